/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The audit log's writer: appends chained records, rotates files, keeps HEAD. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit-internal.h"
#include "base/fileio.h"
#include "base/macro.h"

#define AUDIT_REASON_MAX 1024u /* bytes of audit_open_repair()'s reason */

/* What app ids (manifest_id_is_valid()) and event names are made of: nothing a
 * JSON string or a terminal would need escaped. */
#define APP_CHARS   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define EVENT_CHARS "abcdefghijklmnopqrstuvwxyz0123456789._-"

struct AuditLog {
        int dir_fd;  /* state/audit */
        int lock_fd; /* state/audit/lock, holding an OFD write lock */
        int fd;      /* the current file, O_APPEND */
        unsigned file;
        uint64_t size;                 /* bytes in the current file */
        uint64_t seq;                  /* the last record's */
        uint8_t hash[AUDIT_HASH_SIZE]; /* its line's (zeros before record 1) */
        AuditHead last;                /* where the last record is: HEAD after the next sync */
        bool dirty;                    /* records appended since HEAD was written */
        bool broken;                   /* a failed write could not be undone */
        uint64_t file_max;
        unsigned files_max;
        int64_t (*clock)(void *userdata);
        void *clock_userdata;
        int64_t stamp_sec; /* the second stamp holds */
        char stamp[32];    /* "2024-05-01T12:00:00" */
        /* The line being built; one more byte for head_check(), which reads the
         * newline before HEAD's line too. */
        char buf[AUDIT_LINE_MAX + 1];
};

static const char *const reserved_keys[] = {"seq", "time", "app", "event", "prev"};

AuditLog *audit_close(AuditLog *a)
{
        if (!a)
                return NULL;
        if (a->fd >= 0 && !a->broken)
                (void)audit_sync(a);
        safe_close(a->fd);
        safe_close(a->lock_fd);
        safe_close(a->dir_fd);
        free(a);
        return NULL;
}

uint64_t audit_last_seq(const AuditLog *a)
{
        return a->seq;
}

/* Takes the writer lock on dir_fd/lock. Returns the lock fd, -EBUSY, or -errno. */
static int lock_take(int dir_fd)
{
        _cleanup_close_ int fd = openat(dir_fd, AUDIT_LOCK,
                                        O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        /* An OFD lock, not flock(): readers test for it with F_OFD_GETLK, which does
         * not take it, so a reader can never make a starting writer fail. */
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

        if (fd < 0)
                return negative_errno();
        if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
                return errno == EAGAIN || errno == EACCES ? -EBUSY : negative_errno();
        return TAKE_FD(fd);
}

static int64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* pread() of exactly n bytes; -EBADMSG if the file is shorter. */
static int pread_exact(int fd, char *buf, size_t n, uint64_t offset)
{
        while (n > 0) {
                ssize_t k = pread(fd, buf, n, (off_t)offset);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EBADMSG;
                buf += k;
                n -= (size_t)k;
                offset += (uint64_t)k;
        }
        return 0;
}

/* Checks that the record HEAD names is where HEAD says, with HEAD's hash. */
static int head_check(int dir_fd, const AuditHead *h, char *buf)
{
        char name[AUDIT_NAME_SIZE];
        _cleanup_close_ int fd = -EBADF;
        uint64_t start = h->offset > 0 ? h->offset - 1 : 0;
        size_t n = (size_t)(h->end - start), skip = h->offset > 0;
        uint8_t hash[AUDIT_HASH_SIZE];
        int r;

        audit_file_name(h->file, name);
        fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? -EBADMSG : negative_errno();
        /* n <= AUDIT_LINE_MAX + 1: audit_head_read() bounds end - offset. */
        r = pread_exact(fd, buf, n, start);
        if (r < 0)
                return r;
        if (buf[n - 1] != '\n' || (skip && buf[0] != '\n'))
                return -EBADMSG;
        audit_hash_line(buf + skip, n - skip - 1, hash);
        if (memcmp(hash, h->hash, AUDIT_HASH_SIZE) != 0)
                return -EBADMSG;
        return 0;
}

/* Opens dir_fd/log.<n>.jsonl for appending; create: it must not exist yet. */
static int file_open(int dir_fd, unsigned n, bool create)
{
        char name[AUDIT_NAME_SIZE];
        int fd;

        audit_file_name(n, name);
        fd = openat(dir_fd, name,
                    O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
                            (create ? O_CREAT | O_EXCL : 0),
                    0600);
        if (fd < 0)
                return negative_errno();
        return fd;
}

static int open_dir(const char *state_dir, bool create, int *ret)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (create) {
                r = mkdir_p(state_dir, 0711);
                if (r < 0)
                        return r;
        }
        if (asprintf(&path, "%s/" AUDIT_DIR, state_dir) < 0)
                return -ENOMEM;
        if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        /* Records name apps and what they did: for root's eyes only. */
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0)
                return negative_errno();
        *ret = TAKE_FD(fd);
        return 0;
}

static int open_internal(const char *state_dir, const AuditOptions *o, AuditLog **ret)
{
        _cleanup_(audit_closep) AuditLog *a = NULL;
        AuditVerifyReport report = {};
        AuditHead head = {.file = 1};
        AuditWalk w = {};
        unsigned max_file;
        int r;

        if (o && (o->file_max > AUDIT_FILE_MAX || o->files_max > AUDIT_FILES_MAX))
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->dir_fd = a->lock_fd = a->fd = -EBADF;
        a->file_max = o && o->file_max ? o->file_max : AUDIT_FILE_MAX;
        a->files_max = o && o->files_max ? o->files_max : AUDIT_FILES_MAX;
        a->clock = o ? o->clock : NULL;
        a->clock_userdata = o ? o->clock_userdata : NULL;

        r = open_dir(state_dir, true, &a->dir_fd);
        if (r < 0)
                return r;
        r = lock_take(a->dir_fd);
        if (r < 0)
                return r;
        a->lock_fd = r;
        r = audit_dir_max_file(a->dir_fd, &max_file);
        if (r < 0)
                return r;
        r = audit_head_read(a->dir_fd, &head);
        if (r == -ENOENT) {
                if (max_file > 0)
                        return -EBADMSG; /* records, but no HEAD: the end cannot be checked */
                /* A new log: HEAD first, so a log file never exists without one. */
                head = (AuditHead){.file = 1};
                r = audit_head_write(a->dir_fd, &head);
                if (r < 0)
                        return r;
                a->fd = file_open(a->dir_fd, 1, true);
                if (a->fd < 0)
                        return a->fd;
                if (fsync(a->dir_fd) < 0)
                        return negative_errno();
                a->file = 1;
                a->last = head;
                *ret = TAKE_PTR(a);
                return 0;
        }
        if (r < 0)
                return r;
        if (head.seq > 0) {
                r = head_check(a->dir_fd, &head, a->buf);
                if (r < 0)
                        return r;
        }
        /* Records written after the last sync must continue the chain. */
        w = (AuditWalk){
                .dir_fd = a->dir_fd,
                .file = head.file,
                .offset = head.end,
                .have_prev = head.seq > 0,
                .seq = head.seq,
                .max_file = max_file,
        };
        memcpy(w.hash, head.hash, AUDIT_HASH_SIZE);
        r = audit_walk(&w, &report);
        if (r < 0)
                return r;
        a->seq = w.seq;
        memcpy(a->hash, w.hash, AUDIT_HASH_SIZE);
        a->last = head;
        if (w.last_line_file > 0) {
                a->last = (AuditHead){
                        .seq = w.seq,
                        .file = w.last_line_file,
                        .offset = w.last_line_offset,
                        .end = w.last_line_end,
                };
                memcpy(a->last.hash, w.hash, AUDIT_HASH_SIZE);
                a->dirty = true;
        }
        if (w.last_file == 0) {
                /* HEAD of an empty log whose first file is gone: start it again. */
                if (head.seq > 0)
                        return -EBADMSG;
                a->fd = file_open(a->dir_fd, head.file, true);
                a->file = head.file;
                a->size = 0;
        } else {
                a->fd = file_open(a->dir_fd, w.last_file, false);
                a->file = w.last_file;
                a->size = w.last_size;
        }
        if (a->fd < 0)
                return a->fd;
        r = audit_sync(a);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

int audit_open(const char *state_dir, const AuditOptions *options, AuditLog **ret)
{
        return open_internal(state_dir, options, ret);
}

/* Starts the next file. The old one is made durable first: a crash must not leave
 * records in the new file whose predecessors in the old one are lost. */
static int rotate(AuditLog *a)
{
        char name[AUDIT_NAME_SIZE];
        int fd;

        if (a->file >= a->files_max)
                return -ENOSPC;
        if (fdatasync(a->fd) < 0)
                return negative_errno();
        fd = file_open(a->dir_fd, a->file + 1, true);
        if (fd < 0)
                return fd;
        if (fsync(a->dir_fd) < 0) {
                int r = negative_errno();

                audit_file_name(a->file + 1, name);
                (void)unlinkat(a->dir_fd, name, 0);
                safe_close(fd);
                return r;
        }
        safe_close(a->fd);
        a->fd = fd;
        a->file++;
        a->size = 0;
        return 0;
}

/* The record's time as RFC 3339 UTC: gmtime_r() once a second, not per record. */
static int time_format(AuditLog *a, char *buf, size_t size)
{
        int64_t usec = a->clock ? a->clock(a->clock_userdata) : now_usec();
        int64_t sec = usec / 1000000;

        if (usec < 0)
                return -ERANGE;
        if (sec != a->stamp_sec || !a->stamp[0]) {
                if (!audit_format_time(sec * 1000000, a->stamp, sizeof a->stamp))
                        return -ERANGE;
                a->stamp[19] = 0; /* "2024-05-01T12:00:00" */
                a->stamp_sec = sec;
        }
        snprintf(buf, size, "%.19s.%06dZ", a->stamp, (int)(usec % 1000000));
        return 0;
}

/*
 * Builds the line into a->buf: its length without the newline, or -errno. Written
 * out by hand around jansson's dump of fields: the same bytes json_dumpb() of the
 * whole object would give (JSON_COMPACT, keys in order), but building that object
 * cost 5.3 us a record against 0.9 us for dumping fields alone (docs/audit.md).
 * app and event need no escaping (their character sets are checked), and the rest
 * are digits and hex.
 */
static int line_build(AuditLog *a, const char *app, const char *event, json_t *fields,
                      size_t *ret_len)
{
        char time[32], hex[AUDIT_HEX_SIZE];
        size_t n, k;
        int r;

        r = time_format(a, time, sizeof time);
        if (r < 0)
                return r;
        /* At most ~20 + 27 + AUDIT_APP_MAX + AUDIT_EVENT_MAX + 40 bytes: fits. */
        n = (size_t)snprintf(a->buf, AUDIT_LINE_MAX,
                             "{\"seq\":%" PRIu64 ",\"time\":\"%s\",\"app\":%s%s%s,\"event\":\"%s\"",
                             a->seq + 1, time, app ? "\"" : "", app ?: "null", app ? "\"" : "",
                             event);
        if (fields && json_object_size(fields) > 0) {
                /* "{...}" at buf + n: its "{" becomes ",", its "}" is dropped. */
                k = json_dumpb(fields, a->buf + n, AUDIT_LINE_MAX - n,
                               JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (k == 0)
                        return -ENOMEM;
                if (k > AUDIT_LINE_MAX - n)
                        return -E2BIG;
                a->buf[n] = ',';
                n += k - 1;
        }
        audit_hex(a->hash, hex);
        /* ,"prev":"<64 hex>"} and, after it, the newline: AUDIT_LINE_MAX in all. */
        if (n + 9 + 64 + 2 + 1 > AUDIT_LINE_MAX)
                return -E2BIG;
        n += (size_t)snprintf(a->buf + n, AUDIT_LINE_MAX + 1 - n, ",\"prev\":\"%s\"}", hex);
        *ret_len = n;
        return 0;
}

/* 1..max bytes of the given characters; event names must start with a letter. */
static bool name_is_valid(const char *s, size_t max, const char *charset)
{
        size_t n = s ? strnlen(s, max + 1) : 0;

        return n > 0 && n <= max && strspn(s, charset) == n;
}

static int append_record(AuditLog *a, const char *app, const char *event, json_t *fields)
{
        const char *key;
        json_t *value;
        size_t n, done = 0;
        int r;

        if (a->broken)
                return -EIO;
        if (!name_is_valid(event, AUDIT_EVENT_MAX, EVENT_CHARS) || event[0] < 'a' || event[0] > 'z')
                return -EINVAL;
        if (app && !name_is_valid(app, AUDIT_APP_MAX, APP_CHARS))
                return -EINVAL;
        if (fields && !json_is_object(fields))
                return -EINVAL;
        json_object_foreach(fields, key, value)
        {
                for (size_t i = 0; i < ELEMENTSOF(reserved_keys); i++)
                        if (strcmp(key, reserved_keys[i]) == 0)
                                return -EINVAL;
        }
        r = line_build(a, app, event, fields, &n);
        if (r < 0)
                return r;
        a->buf[n] = '\n';
        if (a->size > 0 && a->size + n + 1 > a->file_max) {
                r = rotate(a);
                if (r < 0)
                        return r;
        }
        /* One write(2) with O_APPEND: a reader sees whole lines but for the one being
         * written. A short write (disk full) is finished or undone, never left. */
        while (done < n + 1) {
                ssize_t k = write(a->fd, a->buf + done, n + 1 - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        if (done > 0 && ftruncate(a->fd, (off_t)a->size) < 0)
                                a->broken = true;
                        return r;
                }
                done += (size_t)k;
        }
        a->seq++;
        audit_hash_line(a->buf, n, a->hash);
        a->last = (AuditHead){
                .seq = a->seq,
                .file = a->file,
                .offset = a->size,
                .end = a->size + n + 1,
        };
        memcpy(a->last.hash, a->hash, AUDIT_HASH_SIZE);
        a->size += n + 1;
        a->dirty = true;
        return 0;
}

int audit_append(AuditLog *a, const char *app, const char *event, json_t *fields)
{
        if (event && strncmp(event, "audit.", 6) == 0)
                return -EINVAL;
        return append_record(a, app, event, fields);
}

int audit_sync(AuditLog *a)
{
        int r;

        if (!a->dirty)
                return 0;
        if (fdatasync(a->fd) < 0)
                return negative_errno();
        r = audit_head_write(a->dir_fd, &a->last);
        if (r < 0)
                return r;
        a->dirty = false;
        return 0;
}

/* Renames state_dir/audit to audit.broken-<UTC time>[.N]; the new name in ret. */
static int move_aside(int state_fd, int64_t usec, char *ret, size_t size)
{
        time_t t = (time_t)(usec / 1000000);
        char stamp[32];
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm) == 0)
                return -ERANGE;
        for (int i = 0; i < 100; i++) {
                if (i == 0)
                        snprintf(ret, size, AUDIT_DIR ".broken-%s", stamp);
                else
                        snprintf(ret, size, AUDIT_DIR ".broken-%s.%d", stamp, i);
                if (renameat2(state_fd, AUDIT_DIR, state_fd, ret, RENAME_NOREPLACE) == 0)
                        return fsync(state_fd) < 0 ? negative_errno() : 0;
                if (errno != EEXIST)
                        return negative_errno();
        }
        return -EEXIST;
}

int audit_open_repair(const char *state_dir, const char *reason, const AuditOptions *options,
                      AuditLog **ret)
{
        _cleanup_(audit_closep) AuditLog *a = NULL;
        _cleanup_close_ int state_fd = -EBADF, dir_fd = -EBADF, lock_fd = -EBADF;
        _cleanup_json_ json_t *fields = NULL;
        AuditVerifyReport report = {};
        char moved[64];
        uint64_t max_seq;
        unsigned max_file;
        int r;

        if (!reason || !*reason || strlen(reason) > AUDIT_REASON_MAX)
                return -EINVAL;
        r = open_internal(state_dir, options, &a);
        if (r != -EBADMSG) {
                if (r >= 0)
                        *ret = TAKE_PTR(a);
                return r;
        }
        /* Hold the broken log's lock while it is examined and moved. */
        r = open_dir(state_dir, false, &dir_fd);
        if (r < 0)
                return r;
        lock_fd = lock_take(dir_fd);
        if (lock_fd < 0)
                return lock_fd;
        /* Not audit_verify(): it would take our own lock for a live writer's and let
         * a torn last line pass as one being written. */
        r = audit_read_at(dir_fd, NULL, NULL, NULL, false, &report);
        if (r == 0) {
                /* Intact after all (someone mended it meanwhile): open it as it is. */
                lock_fd = safe_close(lock_fd);
                r = open_internal(state_dir, options, &a);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(a);
                return 0;
        }
        if (r != -EBADMSG)
                return r;
        r = audit_dir_max_file(dir_fd, &max_file);
        if (r < 0)
                return r;
        r = audit_scan_max_seq(dir_fd, max_file, &max_seq);
        if (r < 0)
                return r;
        if (report.max_seq > max_seq)
                max_seq = report.max_seq;
        state_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (state_fd < 0)
                return negative_errno();
        r = move_aside(state_fd,
                       options && options->clock ? options->clock(options->clock_userdata)
                                                 : now_usec(),
                       moved, sizeof moved);
        if (r < 0)
                return r;

        r = open_internal(state_dir, options, &a);
        if (r < 0)
                return r;
        /* The new chain continues the old: seq after every seq it holds, prev the
         * last record it vouches for. */
        a->seq = max_seq;
        memcpy(a->hash, report.last_good_hash, AUDIT_HASH_SIZE);
        fields = json_pack("{s:s, s:s, s:s, s:I}", "reason", reason, "problem", report.message,
                           "moved_to", moved, "last_good_seq", (json_int_t)report.last_good_seq);
        if (!fields)
                return -EINVAL; /* reason or the message is not UTF-8 */
        r = append_record(a, NULL, AUDIT_EVENT_BREAK, fields);
        if (r < 0)
                return r;
        r = audit_sync(a);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 1;
}
