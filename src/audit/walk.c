/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The audit log's reader: walks the files in chain order, checks every link and
 * HEAD, and hands on the records the chain vouches for. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit-internal.h"
#include "base/fileio.h"
#include "base/macro.h"
#include "base/statedir.h"

#define READ_BUF_SIZE AUDIT_READ_BUF_SIZE

static const char *const problem_names[_AUDIT_PROBLEM_MAX] = {
        [AUDIT_PROBLEM_NONE] = "none",
        [AUDIT_PROBLEM_IO] = "io",
        [AUDIT_PROBLEM_HEAD] = "head",
        [AUDIT_PROBLEM_MISSING_FILE] = "missing-file",
        [AUDIT_PROBLEM_BAD_RECORD] = "bad-record",
        [AUDIT_PROBLEM_SEQ] = "seq",
        [AUDIT_PROBLEM_PREV] = "prev",
        [AUDIT_PROBLEM_TORN] = "torn",
        [AUDIT_PROBLEM_TRUNCATED] = "truncated",
        [AUDIT_PROBLEM_HEAD_MISMATCH] = "head-mismatch",
};

const char *audit_problem_to_string(AuditProblem problem)
{
        if ((unsigned)problem >= _AUDIT_PROBLEM_MAX)
                return NULL;
        return problem_names[problem];
}

void audit_file_name(unsigned n, char *buf)
{
        snprintf(buf, AUDIT_NAME_SIZE, "log.%06u.jsonl", n);
}

void audit_hash_line(const char *line, size_t len, uint8_t ret[AUDIT_HASH_SIZE])
{
        crypto_generichash(ret, AUDIT_HASH_SIZE, (const unsigned char *)line, len, NULL, 0);
}

void audit_hex(const uint8_t hash[AUDIT_HASH_SIZE], char ret[AUDIT_HEX_SIZE])
{
        sodium_bin2hex(ret, AUDIT_HEX_SIZE, hash, AUDIT_HASH_SIZE);
}

int audit_unhex(const char *s, uint8_t ret[AUDIT_HASH_SIZE])
{
        uint8_t h[AUDIT_HASH_SIZE];

        for (size_t i = 0; i < 2 * AUDIT_HASH_SIZE; i++) {
                char c = s[i];
                int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

                if (v < 0)
                        return -EINVAL;
                if (i % 2 == 0)
                        h[i / 2] = (uint8_t)(v << 4);
                else
                        h[i / 2] |= (uint8_t)v;
        }
        if (s[2 * AUDIT_HASH_SIZE])
                return -EINVAL;
        memcpy(ret, h, sizeof h);
        return 0;
}

int audit_report(AuditVerifyReport *report, AuditProblem problem, const char *fmt, ...)
{
        va_list ap;

        report->problem = problem;
        va_start(ap, fmt);
        vsnprintf(report->message, sizeof report->message, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

static int head_uint(json_t *o, const char *key, uint64_t max, uint64_t *ret)
{
        json_t *v = json_object_get(o, key);

        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) > max)
                return -EBADMSG;
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

int audit_head_read(int dir_fd, AuditHead *ret)
{
        static const uint8_t zero[AUDIT_HASH_SIZE];
        _cleanup_free_ char *buf = NULL;
        _cleanup_json_ json_t *o = NULL;
        AuditHead h = {};
        uint64_t file;
        size_t size;
        json_t *hash;
        int r;

        r = read_file_at(dir_fd, AUDIT_HEAD, AUDIT_HEAD_MAX, &buf, &size);
        if (r == -EFBIG)
                return -EBADMSG;
        if (r < 0)
                return r;
        o = json_loadb(buf, size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(o) || json_object_size(o) != 5)
                return -EBADMSG;
        hash = json_object_get(o, "hash");
        if (head_uint(o, "seq", INT64_MAX, &h.seq) < 0 ||
            head_uint(o, "file", AUDIT_FILES_MAX, &file) < 0 || file == 0 ||
            head_uint(o, "offset", INT64_MAX, &h.offset) < 0 ||
            head_uint(o, "end", INT64_MAX, &h.end) < 0 || !json_is_string(hash) ||
            audit_unhex(json_string_value(hash), h.hash) < 0)
                return -EBADMSG;
        h.file = (unsigned)file;
        if (h.seq == 0 ? h.offset != 0 || h.end != 0 || memcmp(h.hash, zero, sizeof zero) != 0
                       : h.end < h.offset + 2 || h.end - h.offset > AUDIT_LINE_MAX)
                return -EBADMSG;
        *ret = h;
        return 0;
}

int audit_head_write(int dir_fd, const AuditHead *h)
{
        _cleanup_close_ int fd = -EBADF;
        char hex[AUDIT_HEX_SIZE], buf[256];
        int n, r;

        audit_hex(h->hash, hex);
        n = snprintf(buf, sizeof buf,
                     "{\"seq\":%" PRIu64 ",\"hash\":\"%s\",\"file\":%u,\"offset\":%" PRIu64
                     ",\"end\":%" PRIu64 "}\n",
                     h->seq, hex, h->file, h->offset, h->end);
        fd = openat(dir_fd, AUDIT_HEAD_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                    0600);
        if (fd < 0)
                return negative_errno();
        r = loop_write(fd, buf, (size_t)n);
        if (r < 0)
                return r;
        /* Durable before the rename, so a crash leaves the old HEAD or the new one,
         * never an empty file (ext4's auto_da_alloc would cover it; xfs would not). */
        if (fdatasync(fd) < 0)
                return negative_errno();
        if (renameat(dir_fd, AUDIT_HEAD_TMP, dir_fd, AUDIT_HEAD) < 0)
                return negative_errno();
        return 0;
}

/* n for a name "log.NNNNNN.jsonl" (six digits, 1..AUDIT_FILES_MAX), else 0. */
static unsigned parse_file_name(const char *name)
{
        unsigned n = 0;

        if (strncmp(name, "log.", 4) != 0 || strcmp(name + 10, ".jsonl") != 0)
                return 0;
        for (int i = 4; i < 10; i++) {
                if (name[i] < '0' || name[i] > '9')
                        return 0;
                n = n * 10 + (unsigned)(name[i] - '0');
        }
        return n;
}

int audit_dir_max_file(int dir_fd, unsigned *ret)
{
        int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        unsigned max = 0;
        struct dirent *de;
        DIR *d;

        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }
        errno = 0;
        while ((de = readdir(d))) {
                unsigned n = strlen(de->d_name) == 16 ? parse_file_name(de->d_name) : 0;

                if (n > max)
                        max = n;
        }
        if (errno) {
                int r = negative_errno();

                closedir(d);
                return r;
        }
        closedir(d);
        *ret = max;
        return 0;
}

/* Whether an OFD write lock on bytes [start, start + len) of dir_fd/lock would
 * conflict with a lock someone holds: F_OFD_GETLK, which takes nothing. */
static bool lock_probe(int dir_fd, off_t start, off_t len)
{
        _cleanup_close_ int fd = openat(dir_fd, AUDIT_LOCK, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = len};

        if (fd < 0)
                return false;
        return fcntl(fd, F_OFD_GETLK, &fl) >= 0 && fl.l_type != F_UNLCK;
}

bool audit_writer_active(int dir_fd)
{
        return lock_probe(dir_fd, 0, 2);
}

bool audit_writer_flushing(int dir_fd)
{
        return lock_probe(dir_fd, AUDIT_LOCK_FLUSH, 1);
}

/* A buffered reader of '\n'-terminated lines, each at most AUDIT_LINE_MAX bytes. */
typedef struct LineReader {
        int fd;
        char *buf; /* READ_BUF_SIZE bytes */
        size_t start, end;
        uint64_t offset; /* file offset of buf[start] */
        bool eof;
} LineReader;

enum {
        LINE_EOF,      /* no more bytes */
        LINE_OK,       /* a complete line */
        LINE_PARTIAL,  /* bytes without a newline, then end of file */
        LINE_TOO_LONG, /* no newline within AUDIT_LINE_MAX bytes */
};

/* How often a reader reads a partial last line again before it calls it torn. */
#define AUDIT_PARTIAL_RETRIES 8u

/* The next line (without its newline; valid until the next call) or LINE_* or -errno. */
static int line_next(LineReader *r, const char **ret, size_t *ret_len)
{
        for (;;) {
                char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
                ssize_t k;

                if (nl) {
                        size_t len = (size_t)(nl - (r->buf + r->start));

                        if (len + 1 > AUDIT_LINE_MAX)
                                return LINE_TOO_LONG;
                        *ret = r->buf + r->start;
                        *ret_len = len;
                        r->start += len + 1;
                        r->offset += len + 1;
                        return LINE_OK;
                }
                if (r->end - r->start >= AUDIT_LINE_MAX)
                        return LINE_TOO_LONG;
                if (r->eof)
                        return r->end > r->start ? LINE_PARTIAL : LINE_EOF;
                if (r->start > 0) {
                        memmove(r->buf, r->buf + r->start, r->end - r->start);
                        r->end -= r->start;
                        r->start = 0;
                }
                k = RETRY_EINTR(read(r->fd, r->buf + r->end, READ_BUF_SIZE - r->end));
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        r->eof = true;
                r->end += (size_t)k;
        }
}

/* The fields of a record the walker checks. */
typedef struct Record {
        uint64_t seq;
        int64_t time_usec;
        const char *app; /* NULL: the supervisor's own record */
        const char *event;
        uint8_t prev[AUDIT_HASH_SIZE];
} Record;

/* Parses and checks one line; on failure writes why into buf. */
static json_t *record_parse(const char *line, size_t len, Record *ret, char *why, size_t size)
{
        json_error_t err;
        json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err), *v;
        Record rec = {};

        if (!o) {
                snprintf(why, size, "not JSON (%.100s at column %d)", err.text, err.column);
                return NULL;
        }
        if (!json_is_object(o)) {
                snprintf(why, size, "not a JSON object");
                goto fail;
        }
        v = json_object_get(o, "seq");
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
                snprintf(why, size, "no positive integer \"seq\"");
                goto fail;
        }
        rec.seq = (uint64_t)json_integer_value(v);
        v = json_object_get(o, "time");
        if (!json_is_string(v) || audit_parse_time(json_string_value(v), &rec.time_usec) < 0) {
                snprintf(why, size, "no RFC 3339 \"time\"");
                goto fail;
        }
        v = json_object_get(o, "app");
        if (!json_is_string(v) && !json_is_null(v)) {
                snprintf(why, size, "\"app\" is not a string or null");
                goto fail;
        }
        rec.app = json_string_value(v);
        v = json_object_get(o, "event");
        if (!json_is_string(v)) {
                snprintf(why, size, "no string \"event\"");
                goto fail;
        }
        rec.event = json_string_value(v);
        v = json_object_get(o, "prev");
        if (!json_is_string(v) || audit_unhex(json_string_value(v), rec.prev) < 0) {
                snprintf(why, size, "no \"prev\" of 64 hex digits");
                goto fail;
        }
        *ret = rec;
        return o;
fail:
        json_decref(o);
        return NULL;
}

/* The last record read, held back until the chain vouches for it. */
typedef struct Pending {
        json_t *rec; /* NULL: nothing held */
        char *line;  /* AUDIT_LINE_MAX bytes, allocated on first use */
        size_t len;
        bool selected; /* the filter lets it through */
} Pending;

static void pending_done(Pending *p)
{
        json_decref(p->rec);
        free(p->line);
}

/* Hands the held record on (if any, and selected). 0 or fn's negative return. */
static int pending_flush(AuditWalk *w, Pending *p)
{
        json_t *rec = TAKE_PTR(p->rec);
        int r = 0;

        if (rec && p->selected && w->fn)
                r = w->fn(rec, p->line, p->len, w->userdata);
        json_decref(rec);
        return r < 0 ? r : 0;
}

static int pending_hold(AuditWalk *w, Pending *p, json_t *rec, const Record *info, const char *line,
                        size_t len)
{
        const AuditFilter *f = w->filter;

        json_decref(p->rec);
        p->rec = NULL;
        if (!w->fn) {
                json_decref(rec);
                return 0;
        }
        if (!p->line) {
                p->line = malloc(AUDIT_LINE_MAX);
                if (!p->line) {
                        json_decref(rec);
                        return -ENOMEM;
                }
        }
        memcpy(p->line, line, len);
        p->len = len;
        p->rec = rec;
        p->selected = !f || ((!f->app || (info->app && strcmp(info->app, f->app) == 0)) &&
                             (!f->has_since || info->time_usec >= f->since_usec));
        return 0;
}

static void where(AuditVerifyReport *report, const char *name, uint64_t line, uint64_t seq)
{
        snprintf(report->file, sizeof report->file, "%s", name);
        report->line = line;
        report->seq = seq;
}

static bool file_exists(int dir_fd, unsigned n)
{
        char name[AUDIT_NAME_SIZE];
        struct stat st;

        audit_file_name(n, name);
        return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

typedef struct WalkState {
        AuditWalk *w;
        AuditVerifyReport *report;
        Pending pending;
        bool anchored; /* past the record HEAD names (or no HEAD to check) */
        char name[AUDIT_NAME_SIZE];
        unsigned file;
        uint64_t line_no;
} WalkState;

/* Checks one complete line whose bytes end (newline included) at file offset end. */
static int walk_line(WalkState *s, const char *line, size_t len, uint64_t end)
{
        static const uint8_t zero[AUDIT_HASH_SIZE];
        AuditWalk *w = s->w;
        AuditVerifyReport *report = s->report;
        const AuditHead *head = w->head;
        uint8_t hash[AUDIT_HASH_SIZE];
        char why[160];
        Record rec;
        json_t *o;
        int r;

        report->after_head = head && s->anchored;
        o = record_parse(line, len, &rec, why, sizeof why);
        if (!o) {
                where(report, s->name, s->line_no, 0);
                return audit_report(report, AUDIT_PROBLEM_BAD_RECORD,
                                    "line %" PRIu64 " of %s (after record %" PRIu64
                                    ") is not a valid record: %s",
                                    s->line_no, s->name, w->seq, why);
        }
        where(report, s->name, s->line_no, rec.seq);
        if (rec.seq > report->max_seq)
                report->max_seq = rec.seq;
        audit_hash_line(line, len, hash);
        if (!w->have_prev) {
                bool is_break = strcmp(rec.event, AUDIT_EVENT_BREAK) == 0;

                if (!is_break && rec.seq != 1) {
                        json_decref(o);
                        return audit_report(report, AUDIT_PROBLEM_SEQ,
                                            "the first record (%s line %" PRIu64
                                            ") has seq %" PRIu64 ": the records before it "
                                            "(from record 1) are missing",
                                            s->name, s->line_no, rec.seq);
                }
                if (!is_break && memcmp(rec.prev, zero, sizeof zero) != 0) {
                        json_decref(o);
                        return audit_report(report, AUDIT_PROBLEM_PREV,
                                            "record 1 in %s (line %" PRIu64
                                            ") has a prev hash: it does not start a chain, "
                                            "the records before it are missing",
                                            s->name, s->line_no);
                }
                report->first_seq = rec.seq;
                report->starts_with_break = is_break;
        } else {
                if (rec.seq != w->seq + 1) {
                        json_decref(o);
                        if (rec.seq == w->seq + 2)
                                return audit_report(report, AUDIT_PROBLEM_SEQ,
                                                    "record %" PRIu64 " in %s (line %" PRIu64
                                                    ") follows record %" PRIu64 ": record %" PRIu64
                                                    " is missing: the log was changed",
                                                    rec.seq, s->name, s->line_no, w->seq,
                                                    w->seq + 1);
                        if (rec.seq > w->seq + 2)
                                return audit_report(report, AUDIT_PROBLEM_SEQ,
                                                    "record %" PRIu64 " in %s (line %" PRIu64
                                                    ") follows record %" PRIu64 ": records %" PRIu64
                                                    " to %" PRIu64
                                                    " are missing: the log was changed",
                                                    rec.seq, s->name, s->line_no, w->seq,
                                                    w->seq + 1, rec.seq - 1);
                        return audit_report(report, AUDIT_PROBLEM_SEQ,
                                            "record %" PRIu64 " in %s (line %" PRIu64
                                            ") follows record %" PRIu64
                                            ": records are repeated or out of order: the log "
                                            "was changed",
                                            rec.seq, s->name, s->line_no, w->seq);
                }
                if (memcmp(rec.prev, w->hash, AUDIT_HASH_SIZE) != 0) {
                        json_decref(o);
                        return audit_report(report, AUDIT_PROBLEM_PREV,
                                            "record %" PRIu64 " in %s (line %" PRIu64
                                            "): prev hash does not match record %" PRIu64
                                            ": the log was changed",
                                            rec.seq, s->name, s->line_no, w->seq);
                }
                /* This record vouches for the one before it. */
                report->last_good_seq = w->seq;
                memcpy(report->last_good_hash, w->hash, AUDIT_HASH_SIZE);
                r = pending_flush(w, &s->pending);
                if (r < 0) {
                        json_decref(o);
                        return r;
                }
        }
        if (!s->anchored && s->file == head->file && end >= head->end) {
                char hex[AUDIT_HEX_SIZE];

                if (end != head->end || rec.seq != head->seq ||
                    memcmp(hash, head->hash, AUDIT_HASH_SIZE) != 0) {
                        json_decref(o);
                        audit_hex(head->hash, hex);
                        return audit_report(report, AUDIT_PROBLEM_HEAD_MISMATCH,
                                            "record %" PRIu64 " in %s (line %" PRIu64
                                            ") is not the record HEAD names (seq %" PRIu64
                                            ", ending at byte %" PRIu64 ", hash %.16s...): the "
                                            "log or HEAD was changed",
                                            rec.seq, s->name, s->line_no, head->seq, head->end,
                                            hex);
                }
                s->anchored = true;
                report->last_good_seq = rec.seq;
                memcpy(report->last_good_hash, hash, AUDIT_HASH_SIZE);
        }
        r = pending_hold(w, &s->pending, o, &rec, line, len);
        if (r < 0)
                return r;
        if (s->anchored && head && rec.seq == head->seq && s->file == head->file &&
            end == head->end) {
                /* HEAD vouches for this one itself. */
                r = pending_flush(w, &s->pending);
                if (r < 0)
                        return r;
        }
        w->have_prev = true;
        w->seq = rec.seq;
        memcpy(w->hash, hash, AUDIT_HASH_SIZE);
        w->last_line_file = s->file;
        w->last_line_offset = end - len - 1;
        w->last_line_end = end;
        report->records++;
        report->last_seq = rec.seq;
        return 0;
}

static int report_io(AuditVerifyReport *report, int r, const char *name)
{
        where(report, name, 0, 0);
        audit_report(report, AUDIT_PROBLEM_IO, "cannot read %s: %s", name, strerror(-r));
        return r;
}

/* Walks one file: 1 to go on to the next, 0 at the end of the log, or < 0. */
static int walk_file(WalkState *s, int fd, uint64_t offset, char *buf)
{
        AuditWalk *w = s->w;
        AuditVerifyReport *report = s->report;
        LineReader lr = {.fd = fd, .buf = buf, .offset = offset};
        bool drained = false;
        unsigned retries = 0;

        for (;;) {
                const char *line;
                size_t len;
                int r = line_next(&lr, &line, &len);

                if (r < 0)
                        return report_io(report, r, s->name);
                switch (r) {
                case LINE_OK:
                        s->line_no++;
                        r = walk_line(s, line, len, lr.offset);
                        if (r < 0)
                                return r;
                        w->last_size = lr.offset;
                        break;
                case LINE_TOO_LONG:
                        where(report, s->name, s->line_no + 1, 0);
                        report->after_head = w->head && s->anchored;
                        return audit_report(report, AUDIT_PROBLEM_BAD_RECORD,
                                            "line %" PRIu64 " of %s (after record %" PRIu64
                                            ") is longer than %u bytes: not a record",
                                            s->line_no + 1, s->name, w->seq, AUDIT_LINE_MAX);
                case LINE_PARTIAL:
                        /* A writer may be in the middle of its write(2): a page at a time.
                         * Only one holding the lock is: writers append nothing without it. */
                        if (w->probe_writer && !file_exists(w->dir_fd, s->file + 1) &&
                            audit_writer_flushing(w->dir_fd)) {
                                report->writer_active = true;
                                return 0;
                        }
                        /* Read again: the lock was free when we looked, so the write
                         * we caught half-way has finished since, or another has
                         * started (then the next look sees its lock). A few rounds:
                         * writers that keep taking turns cannot keep a torn line
                         * partial, only a cut file can. */
                        if (retries++ < AUDIT_PARTIAL_RETRIES) {
                                lr.eof = false;
                                break;
                        }
                        where(report, s->name, s->line_no + 1, 0);
                        report->after_head = w->head && s->anchored;
                        return audit_report(report, AUDIT_PROBLEM_TORN,
                                            "%s ends in an incomplete record after record %" PRIu64
                                            " (line %" PRIu64 ", %zu bytes without a newline): "
                                            "the log was truncated or a write was cut short",
                                            s->name, w->seq, s->line_no + 1, lr.end - lr.start);
                case LINE_EOF:
                        if (!file_exists(w->dir_fd, s->file + 1))
                                return 0;
                        /* The writer rotated: it had finished this file before it made the
                         * next one, so read what it wrote since our read hit the end. */
                        if (!drained) {
                                drained = true;
                                lr.eof = false;
                                break;
                        }
                        return 1;
                }
        }
}

int audit_walk(AuditWalk *w, AuditVerifyReport *report)
{
        _cleanup_free_ char *buf = malloc(READ_BUF_SIZE);
        WalkState s = {.w = w, .report = report, .anchored = !w->head || w->head->seq == 0};
        int r = 0;

        if (!buf)
                return -ENOMEM;
        w->last_file = 0;
        w->last_size = 0;
        w->last_line_file = 0;
        for (unsigned n = w->file; n <= AUDIT_FILES_MAX; n++) {
                _cleanup_close_ int fd = -EBADF;
                uint64_t offset = n == w->file ? w->offset : 0;

                s.file = n;
                s.line_no = 0;
                audit_file_name(n, s.name);
                fd = openat(w->dir_fd, s.name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (fd < 0) {
                        r = negative_errno();
                        if (r != -ENOENT) {
                                report_io(report, r, s.name);
                                goto out;
                        }
                        if (n <= w->max_file) {
                                char next[AUDIT_NAME_SIZE];

                                audit_file_name(w->max_file, next);
                                where(report, s.name, 0, 0);
                                report->after_head = w->head && s.anchored;
                                r = audit_report(report, AUDIT_PROBLEM_MISSING_FILE,
                                                 "%s is missing, but the log goes on to %s: "
                                                 "a log file was removed",
                                                 s.name, next);
                                goto out;
                        }
                        r = 0;
                        break;
                }
                if (offset > 0 && lseek(fd, (off_t)offset, SEEK_SET) < 0) {
                        r = report_io(report, negative_errno(), s.name);
                        goto out;
                }
                report->files++;
                w->last_file = n;
                w->last_size = offset;
                r = walk_file(&s, fd, offset, buf);
                if (r < 0)
                        goto out;
                if (!s.anchored && n >= w->head->file)
                        break;
                /* Past the last file: but files up to max_file must all be there. */
                if (r == 0 && n >= w->max_file)
                        break;
        }
        r = 0;
        if (!s.anchored) {
                audit_file_name(w->head->file, s.name);
                where(report, s.name, 0, 0);
                report->after_head = false;
                if (w->seq + 1 == w->head->seq)
                        r = audit_report(report, AUDIT_PROBLEM_TRUNCATED,
                                         "the log ends at record %" PRIu64 ", but HEAD says it "
                                         "ran to record %" PRIu64 ": record %" PRIu64
                                         " was removed",
                                         w->seq, w->head->seq, w->head->seq);
                else if (w->seq < w->head->seq)
                        r = audit_report(report, AUDIT_PROBLEM_TRUNCATED,
                                         "the log ends at record %" PRIu64 ", but HEAD says it "
                                         "ran to record %" PRIu64 ": records %" PRIu64
                                         " to %" PRIu64 " were removed",
                                         w->seq, w->head->seq, w->seq + 1, w->head->seq);
                else
                        r = audit_report(report, AUDIT_PROBLEM_HEAD_MISMATCH,
                                         "no record ends at byte %" PRIu64
                                         " of log.%06u.jsonl, where HEAD says record %" PRIu64
                                         " ends: the log or HEAD was changed",
                                         w->head->end, w->head->file, w->head->seq);
                goto out;
        }
        /* A clean end: the last record is either HEAD's (handed on already) or was
         * written after the last sync, which nothing can vouch for yet. */
        if (!w->hold_last)
                r = pending_flush(w, &s.pending);
out:
        pending_done(&s.pending);
        return r;
}

/* Whether line is {"seq":<seq>,...,"prev":"<hex>"} as the writer writes it. */
static bool link_bytes_ok(const char *line, size_t len, uint64_t seq,
                          const char hex[AUDIT_HEX_SIZE])
{
        static const char prev[] = ",\"prev\":\"";
        const size_t tail = sizeof prev - 1 + 2 * AUDIT_HASH_SIZE + 2;
        char head[40];
        size_t n = (size_t)snprintf(head, sizeof head, "{\"seq\":%" PRIu64 ",", seq);
        const char *t;

        if (len < n + tail || memcmp(line, head, n) != 0)
                return false;
        t = line + len - tail;
        return memcmp(t, prev, sizeof prev - 1) == 0 &&
               memcmp(t + sizeof prev - 1, hex, 2 * AUDIT_HASH_SIZE) == 0 &&
               memcmp(t + tail - 2, "\"}", 2) == 0;
}

/* Whether line parses as a record (record_parse()) with this seq and prev. */
static bool link_parsed_ok(const char *line, size_t len, uint64_t seq,
                           const uint8_t prev[AUDIT_HASH_SIZE])
{
        char why[160];
        Record rec;
        json_t *o = record_parse(line, len, &rec, why, sizeof why);
        bool ok = o && rec.seq == seq && memcmp(rec.prev, prev, AUDIT_HASH_SIZE) == 0;

        json_decref(o);
        return ok;
}

int audit_follow(AuditFollow *f, char *buf, char *line_copy)
{
        uint8_t last_prev[AUDIT_HASH_SIZE] = {};
        size_t last_len = 0;
        uint64_t records = 0;
        char hex[AUDIT_HEX_SIZE];

        audit_hex(f->hash, hex);
        for (unsigned n = f->file; n <= AUDIT_FILES_MAX; n++) {
                char name[AUDIT_NAME_SIZE];
                _cleanup_close_ int fd = -EBADF;
                uint64_t offset = n == f->file ? f->offset : 0;
                LineReader lr = {.buf = buf, .offset = offset};
                struct stat st;
                const char *line;
                size_t len;
                int r;

                audit_file_name(n, name);
                fd = openat(f->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (fd < 0) {
                        if (errno != ENOENT)
                                return negative_errno();
                        if (n == f->file)
                                return -EBADMSG; /* the file we wrote last is gone */
                        break;
                }
                if (fstat(fd, &st) < 0)
                        return negative_errno();
                if ((uint64_t)st.st_size < offset)
                        return -EBADMSG; /* cut short of what we know was written */
                if (offset > 0 && lseek(fd, (off_t)offset, SEEK_SET) < 0)
                        return negative_errno();
                lr.fd = fd;
                while ((r = line_next(&lr, &line, &len)) == LINE_OK) {
                        uint8_t hash[AUDIT_HASH_SIZE];

                        if (!link_bytes_ok(line, len, f->seq + 1, hex) &&
                            !link_parsed_ok(line, len, f->seq + 1, f->hash))
                                return -EBADMSG;
                        memcpy(last_prev, f->hash, AUDIT_HASH_SIZE);
                        audit_hash_line(line, len, hash);
                        f->seq++;
                        memcpy(f->hash, hash, AUDIT_HASH_SIZE);
                        audit_hex(hash, hex);
                        f->last = (AuditHead){
                                .seq = f->seq,
                                .file = n,
                                .offset = lr.offset - len - 1,
                                .end = lr.offset,
                        };
                        memcpy(f->last.hash, hash, AUDIT_HASH_SIZE);
                        memcpy(line_copy, line, len);
                        last_len = len;
                        records++;
                }
                if (r < 0)
                        return r;
                if (r != LINE_EOF)
                        return -EBADMSG; /* torn or too long: no write is in progress */
                f->file = n;
                f->offset = lr.offset;
        }
        /* The new end must be a record as the walker takes it, not just linked bytes. */
        if (records > 0 && !link_parsed_ok(line_copy, last_len, f->seq, last_prev))
                return -EBADMSG;
        f->records = records;
        return 0;
}

int audit_scan_max_seq(int dir_fd, unsigned max_file, uint64_t *ret)
{
        _cleanup_free_ char *buf = malloc(READ_BUF_SIZE);
        uint64_t max = 0;

        if (!buf)
                return -ENOMEM;
        for (unsigned n = 1; n <= max_file; n++) {
                char name[AUDIT_NAME_SIZE];
                _cleanup_close_ int fd = -EBADF;
                LineReader lr = {.buf = buf};
                const char *line;
                size_t len;
                int r;

                audit_file_name(n, name);
                fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (fd < 0) {
                        if (errno == ENOENT)
                                continue;
                        return negative_errno();
                }
                lr.fd = fd;
                while ((r = line_next(&lr, &line, &len)) == LINE_OK) {
                        _cleanup_json_ json_t *o = json_loadb(line, len, 0, NULL);
                        json_t *seq = json_object_get(o, "seq");

                        if (json_is_integer(seq) && json_integer_value(seq) > 0 &&
                            (uint64_t)json_integer_value(seq) > max)
                                max = (uint64_t)json_integer_value(seq);
                }
                if (r < 0)
                        return r;
        }
        *ret = max;
        return 0;
}

int audit_read_at(int dir_fd, const AuditFilter *filter, AuditRecordFn fn, void *userdata,
                  bool probe_writer, AuditVerifyReport *report)
{
        AuditHead head = {};
        AuditWalk w = {.dir_fd = dir_fd,
                       .file = 1,
                       .probe_writer = probe_writer,
                       .filter = filter,
                       .fn = fn,
                       .userdata = userdata};
        int head_r, r;

        if (probe_writer)
                report->writer_active = audit_writer_active(dir_fd);
        head_r = audit_head_read(dir_fd, &head);
        if (head_r < 0 && head_r != -ENOENT && head_r != -EBADMSG)
                return report_io(report, head_r, AUDIT_HEAD);
        r = audit_dir_max_file(dir_fd, &w.max_file);
        if (r < 0)
                return report_io(report, r, AUDIT_DIR);
        if (head_r == 0) {
                w.head = &head;
                report->head_seq = report->max_seq = head.seq;
                memcpy(report->head_hash, head.hash, AUDIT_HASH_SIZE);
        } else if (w.max_file > 0) {
                /* Without HEAD the end cannot be checked: the last record, which only
                 * HEAD could vouch for, is not handed on. */
                w.hold_last = true;
        }
        r = audit_walk(&w, report);
        if (r < 0)
                return r;
        if (head_r < 0 && w.max_file > 0) {
                where(report, AUDIT_HEAD, 0, 0);
                return audit_report(report, AUDIT_PROBLEM_HEAD,
                                    head_r == -ENOENT
                                            ? "HEAD is missing, but the log holds records: "
                                              "whether records were removed from its end "
                                              "cannot be told"
                                            : "HEAD is not valid: whether records were removed "
                                              "from the log's end cannot be told");
        }
        return 0;
}

int audit_read(const char *state_dir, const AuditFilter *filter, AuditRecordFn fn, void *userdata,
               AuditVerifyReport *report)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int state_fd = -EBADF, dir_fd = -EBADF;
        struct stat st;
        int r;

        memset(report, 0, sizeof *report);
        if (sodium_init() < 0)
                return -EIO;
        if (asprintf(&path, "%s/" AUDIT_DIR, state_dir) < 0)
                return -ENOMEM;
        /* A chain that someone else could have written proves nothing: the state
         * directory and audit/ must be ours (base/statedir.h; logged). */
        state_fd = state_dir_open(state_dir, false);
        if (state_fd == -ENOENT) {
                snprintf(report->message, sizeof report->message, "no audit log in %s", path);
                return -ENOENT;
        }
        if (state_fd < 0) {
                audit_report(report, AUDIT_PROBLEM_IO, "the state directory %s is not trusted",
                             state_dir);
                return state_fd;
        }
        dir_fd = openat(state_fd, AUDIT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir_fd >= 0 && fstat(dir_fd, &st) == 0 && st.st_uid != geteuid()) {
                r = owned_check(path, &st);
                audit_report(report, AUDIT_PROBLEM_IO, "%s is not trusted", path);
                return r;
        }
        if (dir_fd < 0) {
                r = negative_errno();
                if (r == -ENOENT) {
                        snprintf(report->message, sizeof report->message, "no audit log in %s",
                                 path);
                        return r;
                }
                return report_io(report, r, AUDIT_DIR);
        }
        return audit_read_at(dir_fd, filter, fn, userdata, true, report);
}

int audit_verify(const char *state_dir, AuditVerifyReport *report)
{
        return audit_read(state_dir, NULL, NULL, NULL, report);
}
