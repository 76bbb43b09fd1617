/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The audit log's writer: appends chained records, rotates files, keeps HEAD. */
#include <assert.h>
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

/* A line is {"seq":N<middle>,"prev":"<hex>"} and a newline; the seq is known only
 * when the batch is written, so a record is kept as its middle and counted at the
 * most digits a seq can have (INT64_MAX: 19; jansson's integers are int64). */
#define SEQ_DIGITS_MAX 19u
#define LINE_HEAD      "{\"seq\":"
#define LINE_PREV      ",\"prev\":\""
#define LINE_OVERHEAD                                                                              \
        (sizeof LINE_HEAD - 1 + SEQ_DIGITS_MAX + sizeof LINE_PREV - 1 + 2 * AUDIT_HASH_SIZE + 3)

struct AuditLog {
        int state_fd; /* state */
        int dir_fd;   /* state/audit; -EBADF: detached (a re-attach failed), tried again */
        dev_t dir_dev;
        ino_t dir_ino;
        int lock_fd; /* state/audit/lock: read lock AUDIT_LOCK_OPEN held while open */
        int fd;      /* the newest file as last seen, O_APPEND */
        unsigned file;
        uint64_t size;                 /* bytes in that file, as last seen under the lock */
        uint64_t seq;                  /* the chain's last record, as last seen */
        uint8_t hash[AUDIT_HASH_SIZE]; /* its line's (zeros before record 1) */
        AuditHead last;                /* where that record is: HEAD after the next sync */
        bool dirty;                    /* our records not yet named by HEAD */
        uint64_t sync_lag_ms;          /* AuditOptions.sync_lag_ms */
        uint64_t head_seq;             /* the seq HEAD named when we last read or wrote it */
        bool broken;                   /* a failed write could not be undone */
        uint64_t file_max;
        unsigned files_max;
        int64_t (*clock)(void *userdata);
        void *clock_userdata;
        int64_t stamp_sec; /* the second stamp holds */
        char stamp[32];    /* "2024-05-01T12:00:00" */
        /* Records appended and not yet written, each a uint32_t length and its middle
         * (from ,"time" to the end of the fields); batch_lines counts their lines at
         * LINE_OVERHEAD + middle each, at most AUDIT_BATCH_MAX. */
        char *batch;
        size_t batch_len;
        size_t batch_lines;
        unsigned batch_n;
        /* AUDIT_BATCH_MAX bytes: the lines as written; audit_follow()'s read buffer. */
        char *out;
        /* A record's middle being built; one more byte for head_check(), which reads
         * the newline before HEAD's line too; audit_follow()'s line copy. */
        char buf[AUDIT_LINE_MAX + 1];
};

static const char *const reserved_keys[] = {"seq", "time", "app", "event", "prev"};

_Static_assert(AUDIT_BATCH_MAX >= AUDIT_READ_BUF_SIZE, "audit_follow() borrows the batch buffer");
_Static_assert(AUDIT_BATCH_MAX >= 2 * AUDIT_LINE_MAX, "a batch holds the longest record");

/* Closes the log's directory and files, and with them its locks. */
static void detach(AuditLog *a)
{
        a->fd = safe_close(a->fd);
        a->lock_fd = safe_close(a->lock_fd);
        a->dir_fd = safe_close(a->dir_fd);
}

static int lock_refresh(AuditLog *a);
static void unlock(AuditLog *a);
static bool sync_due(AuditLog *a);
static int sync_locked(AuditLog *a);

AuditLog *audit_close(AuditLog *a)
{
        if (!a)
                return NULL;
        if (!a->broken && a->sync_lag_ms == 0)
                (void)audit_sync(a);
        else if (!a->broken && audit_flush(a) >= 0 && a->dirty && lock_refresh(a) >= 0) {
                /* HEAD may lag by sync_lag_ms: a short-lived writer (cella run) does
                 * not pay two fsyncs at every exit. */
                if (sync_due(a))
                        (void)sync_locked(a);
                unlock(a);
        }
        detach(a);
        safe_close(a->state_fd);
        free(a->batch);
        free(a->out);
        free(a);
        return NULL;
}

uint64_t audit_last_seq(const AuditLog *a)
{
        return a->seq;
}

/* An OFD lock of type on byte of fd (F_UNLCK releases); wait: block until free.
 * OFD locks, not flock(): readers test for them with F_OFD_GETLK, which takes
 * nothing, and two AuditLogs of one process exclude each other. */
static int lock_byte(int fd, short type, off_t byte, bool wait)
{
        struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};

        for (;;) {
                if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
                        return 0;
                if (errno == EINTR)
                        continue;
                return errno == EAGAIN || errno == EACCES ? -EBUSY : negative_errno();
        }
}

static void unlock(AuditLog *a)
{
        if (a->lock_fd >= 0)
                (void)lock_byte(a->lock_fd, F_UNLCK, AUDIT_LOCK_FLUSH, false);
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

/* Opens state_fd/name (creating it, 0700, if create), fixing its mode. */
static int open_dir(int state_fd, const char *name, bool create, int *ret)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (create && mkdirat(state_fd, name, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        fd = openat(state_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
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

/* Makes our records durable and HEAD name the chain's last record. Lock held, tail
 * fresh: HEAD only ever moves forward, whoever writes it. */
static int sync_locked(AuditLog *a)
{
        int r;

        if (fdatasync(a->fd) < 0)
                return negative_errno();
        r = audit_head_write(a->dir_fd, &a->last);
        if (r < 0)
                return r;
        a->dirty = false;
        a->head_seq = a->last.seq;
        return 0;
}

/*
 * Whether HEAD should be brought up to date now. Always without a sync lag;
 * with one, once HEAD is sync_lag_ms old (its mtime: any writer's sync counts) or
 * AUDIT_SYNC_LAG_RECORDS records behind what we know. Lock held.
 */
static bool sync_due(AuditLog *a)
{
        struct timespec now;
        struct stat st;

        if (a->sync_lag_ms == 0 || a->seq - a->head_seq >= AUDIT_SYNC_LAG_RECORDS)
                return true;
        if (fstatat(a->dir_fd, AUDIT_HEAD, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            clock_gettime(CLOCK_REALTIME, &now) < 0)
                return true;
        return (uint64_t)(now.tv_sec - st.st_mtim.tv_sec) * 1000u +
                       (uint64_t)((now.tv_nsec - st.st_mtim.tv_nsec) / 1000000) >=
               a->sync_lag_ms;
}

/*
 * Attaches a to state/name: opens it (creating it and a new log if missing), takes
 * the open lock and, waiting for it, the flush lock, and checks the end of the log
 * as audit_open() documents; records after HEAD are synced. Returns 0 with the
 * flush lock held, or -errno with a detached.
 */
static int attach(AuditLog *a, const char *name)
{
        _cleanup_close_ int dir_fd = -EBADF, lock_fd = -EBADF;
        AuditVerifyReport report = {};
        AuditHead head = {.file = 1};
        AuditWalk w = {};
        struct stat st;
        unsigned max_file;
        int r;

        detach(a);
        r = open_dir(a->state_fd, name, true, &dir_fd);
        if (r < 0)
                return r;
        if (fstat(dir_fd, &st) < 0)
                return negative_errno();
        lock_fd = openat(dir_fd, AUDIT_LOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
                         0600);
        if (lock_fd < 0)
                return negative_errno();
        r = lock_byte(lock_fd, F_RDLCK, AUDIT_LOCK_OPEN, false);
        if (r < 0)
                return r;
        r = lock_byte(lock_fd, F_WRLCK, AUDIT_LOCK_FLUSH, true);
        if (r < 0)
                return r;
        r = audit_dir_max_file(dir_fd, &max_file);
        if (r < 0)
                return r;
        r = audit_head_read(dir_fd, &head);
        if (r == -ENOENT) {
                if (max_file > 0)
                        return -EBADMSG; /* records, but no HEAD: the end cannot be checked */
                /* A new log: HEAD first, so a log file never exists without one. */
                head = (AuditHead){.file = 1};
                r = audit_head_write(dir_fd, &head);
                if (r < 0)
                        return r;
                a->fd = file_open(dir_fd, 1, true);
                if (a->fd < 0)
                        return a->fd;
                if (fsync(dir_fd) < 0) {
                        r = negative_errno();
                        a->fd = safe_close(a->fd);
                        return r;
                }
                a->file = 1;
                a->size = 0;
                a->seq = 0;
                memset(a->hash, 0, AUDIT_HASH_SIZE);
                a->last = head;
                a->dirty = false;
                goto done;
        }
        if (r < 0)
                return r;
        if (head.seq > 0) {
                r = head_check(dir_fd, &head, a->buf);
                if (r < 0)
                        return r;
        }
        /* Records written after the last sync must continue the chain. */
        w = (AuditWalk){
                .dir_fd = dir_fd,
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
        if (w.last_file == 0) {
                /* HEAD of an empty log whose first file is gone: start it again. */
                if (head.seq > 0)
                        return -EBADMSG;
                a->fd = file_open(dir_fd, head.file, true);
                a->file = head.file;
                a->size = 0;
        } else {
                a->fd = file_open(dir_fd, w.last_file, false);
                a->file = w.last_file;
                a->size = w.last_size;
        }
        if (a->fd < 0)
                return a->fd;
        a->seq = w.seq;
        memcpy(a->hash, w.hash, AUDIT_HASH_SIZE);
        a->last = head;
        a->head_seq = head.seq;
        a->dirty = false;
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
done:
        a->dir_fd = TAKE_FD(dir_fd);
        a->lock_fd = TAKE_FD(lock_fd);
        a->dir_dev = st.st_dev;
        a->dir_ino = st.st_ino;
        if (a->dirty && sync_due(a)) {
                /* Records since the last sync (a crash, or writers that have not synced
                 * yet): anchor them now, unless HEAD is recent enough. */
                r = sync_locked(a);
                if (r < 0) {
                        detach(a);
                        return r;
                }
        }
        return 0;
}

/* 1 if state/audit is no longer the directory a writes to (audit_open_repair() in
 * another process put a new log there, or it was removed), 0 if it is, or -errno. */
static int dir_moved(AuditLog *a)
{
        struct stat st;

        if (fstatat(a->state_fd, AUDIT_DIR, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 1 : negative_errno();
        return st.st_dev != a->dir_dev || st.st_ino != a->dir_ino;
}

/* With the flush lock held: learns where the chain ends now (other writers may have
 * appended or rotated since we last looked) and checks what they wrote. */
static int refresh(AuditLog *a)
{
        char name[AUDIT_NAME_SIZE];
        AuditFollow f;
        struct stat st;
        int r;

        /* The common case costs two stat calls: no new file, ours the size we left it. */
        audit_file_name(a->file + 1, name);
        if (fstatat(a->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno != ENOENT)
                        return negative_errno();
                if (fstat(a->fd, &st) < 0)
                        return negative_errno();
                if ((uint64_t)st.st_size == a->size)
                        return 0;
        }
        f = (AuditFollow){.dir_fd = a->dir_fd, .file = a->file, .offset = a->size, .seq = a->seq};
        memcpy(f.hash, a->hash, AUDIT_HASH_SIZE);
        r = audit_follow(&f, a->out, a->buf);
        if (r < 0)
                return r;
        if (f.file != a->file) {
                int fd = file_open(a->dir_fd, f.file, false);

                if (fd < 0)
                        return fd;
                safe_close(a->fd);
                a->fd = fd;
                a->file = f.file;
        }
        a->size = f.offset;
        if (f.records > 0) {
                a->seq = f.seq;
                memcpy(a->hash, f.hash, AUDIT_HASH_SIZE);
                a->last = f.last;
        }
        return 0;
}

/* Takes the flush lock (waiting for a writer in the middle of a write) and brings
 * the tail up to date, re-attaching if state/audit is another directory now.
 * Returns 0 with the lock held, or -errno without it. */
static int lock_refresh(AuditLog *a)
{
        int r;

        if (a->dir_fd < 0)
                return attach(a, AUDIT_DIR);
        r = lock_byte(a->lock_fd, F_WRLCK, AUDIT_LOCK_FLUSH, true);
        if (r < 0)
                return r;
        r = dir_moved(a);
        if (r > 0)
                return attach(a, AUDIT_DIR); /* closing the old lock fd releases it */
        if (r == 0)
                r = refresh(a);
        if (r < 0)
                unlock(a);
        return r;
}

/* Allocates a log handle on state_dir (created 0711 if missing), not attached. */
static int log_new(const char *state_dir, const AuditOptions *o, AuditLog **ret)
{
        _cleanup_(audit_closep) AuditLog *a = NULL;
        int r;

        if (o && (o->file_max > AUDIT_FILE_MAX || o->files_max > AUDIT_FILES_MAX))
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->state_fd = a->dir_fd = a->lock_fd = a->fd = -EBADF;
        a->broken = true; /* nothing to sync until attached */
        a->file_max = o && o->file_max ? o->file_max : AUDIT_FILE_MAX;
        a->sync_lag_ms = o ? o->sync_lag_ms : 0;
        a->files_max = o && o->files_max ? o->files_max : AUDIT_FILES_MAX;
        a->clock = o ? o->clock : NULL;
        a->clock_userdata = o ? o->clock_userdata : NULL;
        a->batch = malloc(AUDIT_BATCH_MAX);
        a->out = malloc(AUDIT_BATCH_MAX);
        if (!a->batch || !a->out)
                return -ENOMEM;
        r = mkdir_p(state_dir, 0711);
        if (r < 0)
                return r;
        a->state_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (a->state_fd < 0)
                return negative_errno();
        *ret = TAKE_PTR(a);
        return 0;
}

int audit_open(const char *state_dir, const AuditOptions *options, AuditLog **ret)
{
        _cleanup_(audit_closep) AuditLog *a = NULL;
        int r;

        r = log_new(state_dir, options, &a);
        if (r < 0)
                return r;
        r = attach(a, AUDIT_DIR);
        if (r < 0)
                return r;
        unlock(a);
        a->broken = false;
        *ret = TAKE_PTR(a);
        return 0;
}

/* Starts the next file. The old one is made durable first: a crash must not leave
 * records in the new file whose predecessors in the old one are lost. Lock held. */
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
 * Builds a record's middle into a->buf: ,"time":"...","app":...,"event":"..." and
 * the fields, everything between the seq and ,"prev" (only known when the batch is
 * written). Its length, or -errno. Written out by hand around jansson's dump of
 * fields: the same bytes json_dumpb() of the whole object would give (JSON_COMPACT,
 * keys in order), but building that object cost 5.3 us a record against 0.9 us for
 * dumping fields alone (docs/audit.md). app and event need no escaping (their
 * character sets are checked), and the rest are digits and hex.
 */
static int middle_build(AuditLog *a, const char *app, const char *event, json_t *fields,
                        size_t *ret_len)
{
        /* The longest line with this middle must fit AUDIT_LINE_MAX. */
        const size_t max = AUDIT_LINE_MAX - LINE_OVERHEAD;
        char time[32];
        size_t n, k;
        int r;

        r = time_format(a, time, sizeof time);
        if (r < 0)
                return r;
        /* At most ~27 + AUDIT_APP_MAX + AUDIT_EVENT_MAX + 30 bytes: fits. */
        n = (size_t)snprintf(a->buf, max, ",\"time\":\"%s\",\"app\":%s%s%s,\"event\":\"%s\"", time,
                             app ? "\"" : "", app ?: "null", app ? "\"" : "", event);
        if (fields && json_object_size(fields) > 0) {
                /* "{...}" at buf + n: its "{" becomes ",", its "}" is dropped. */
                k = json_dumpb(fields, a->buf + n, max + 1 - n, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (k == 0)
                        return -ENOMEM;
                if (n + k - 1 > max)
                        return -E2BIG;
                a->buf[n] = ',';
                n += k - 1;
        }
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
        uint32_t len32;
        size_t n;
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
        r = middle_build(a, app, event, fields, &n);
        if (r < 0)
                return r;
        if (a->batch_lines + LINE_OVERHEAD + n > AUDIT_BATCH_MAX) {
                /* Full: write the batch first (a->buf is not touched by a flush that
                 * stays on the fast path, but audit_follow() borrows it). */
                char *middle = malloc(n);

                if (!middle)
                        return -ENOMEM;
                memcpy(middle, a->buf, n);
                r = audit_flush(a);
                if (r >= 0)
                        memcpy(a->buf, middle, n);
                free(middle);
                if (r < 0)
                        return r;
        }
        len32 = (uint32_t)n;
        memcpy(a->batch + a->batch_len, &len32, sizeof len32);
        memcpy(a->batch + a->batch_len + sizeof len32, a->buf, n);
        a->batch_len += sizeof len32 + n;
        a->batch_lines += LINE_OVERHEAD + n;
        a->batch_n++;
        return 0;
}

int audit_append(AuditLog *a, const char *app, const char *event, json_t *fields)
{
        if (event && strncmp(event, "audit.", 6) == 0)
                return -EINVAL;
        return append_record(a, app, event, fields);
}

/* Writes n bytes of buf at the end of the current file. A short write (disk full)
 * is finished or undone, never left: lock held, so the end is ours. */
static int write_all(AuditLog *a, const char *buf, size_t n)
{
        size_t done = 0;

        while (done < n) {
                ssize_t k = write(a->fd, buf + done, n - done);

                if (k < 0) {
                        int r = negative_errno();

                        if (r == -EINTR)
                                continue;
                        if (done > 0 && ftruncate(a->fd, (off_t)a->size) < 0)
                                a->broken = true;
                        return r;
                }
                done += (size_t)k;
        }
        return 0;
}

/*
 * With the flush lock held and the tail fresh: numbers and chains the batch onto
 * the tail and writes it, one write(2) a file (a batch that reaches the rotation
 * bound is split). Records written leave the batch; on failure the rest stay.
 */
static int flush_locked(AuditLog *a)
{
        size_t pos = 0, lines_done = 0;
        unsigned n_done = 0;
        int r = 0, w;

        while (pos < a->batch_len) {
                uint8_t hash[AUDIT_HASH_SIZE];
                uint64_t seq = a->seq;
                AuditHead last = a->last;
                size_t out_len = 0, p = pos, lines = 0;
                unsigned k = 0;

                memcpy(hash, a->hash, AUDIT_HASH_SIZE);
                while (p < a->batch_len) {
                        char num[24], hex[AUDIT_HEX_SIZE], *o = a->out + out_len;
                        uint32_t mlen;
                        size_t d, n;

                        memcpy(&mlen, a->batch + p, sizeof mlen);
                        if (seq >= INT64_MAX) {
                                r = -EOVERFLOW; /* past what a reader's int64 takes */
                                break;
                        }
                        d = (size_t)snprintf(num, sizeof num, "%" PRIu64, seq + 1);
                        n = sizeof LINE_HEAD - 1 + d + mlen + sizeof LINE_PREV - 1 +
                            2 * AUDIT_HASH_SIZE + 2; /* without the newline */
                        if (a->size + out_len > 0 && a->size + out_len + n + 1 > a->file_max)
                                break;
                        /* The lines never outgrow what batch_lines counted for them. */
                        assert(out_len + n + 1 <= AUDIT_BATCH_MAX);
                        audit_hex(hash, hex);
                        memcpy(o, LINE_HEAD, sizeof LINE_HEAD - 1);
                        o += sizeof LINE_HEAD - 1;
                        memcpy(o, num, d);
                        o += d;
                        memcpy(o, a->batch + p + sizeof mlen, mlen);
                        o += mlen;
                        memcpy(o, LINE_PREV, sizeof LINE_PREV - 1);
                        o += sizeof LINE_PREV - 1;
                        memcpy(o, hex, 2 * AUDIT_HASH_SIZE);
                        o += 2 * AUDIT_HASH_SIZE;
                        memcpy(o, "\"}\n", 3);
                        audit_hash_line(a->out + out_len, n, hash);
                        seq++;
                        last = (AuditHead){
                                .seq = seq,
                                .file = a->file,
                                .offset = a->size + out_len,
                                .end = a->size + out_len + n + 1,
                        };
                        out_len += n + 1;
                        p += sizeof mlen + mlen;
                        lines += LINE_OVERHEAD + mlen;
                        k++;
                }
                if (k == 0) {
                        if (r < 0)
                                break;
                        /* The next record would take this file past the bound. */
                        r = rotate(a);
                        if (r < 0)
                                break;
                        continue;
                }
                w = write_all(a, a->out, out_len);
                if (w < 0) {
                        r = w;
                        break;
                }
                a->seq = seq;
                memcpy(a->hash, hash, AUDIT_HASH_SIZE);
                memcpy(last.hash, hash, AUDIT_HASH_SIZE);
                a->last = last;
                a->size += out_len;
                a->dirty = true;
                pos = p;
                lines_done += lines;
                n_done += k;
                if (r < 0)
                        break; /* -EOVERFLOW after the records before it */
        }
        memmove(a->batch, a->batch + pos, a->batch_len - pos);
        a->batch_len -= pos;
        a->batch_lines -= lines_done;
        a->batch_n -= n_done;
        return r;
}

int audit_flush(AuditLog *a)
{
        int r;

        if (a->broken)
                return -EIO;
        if (a->batch_n == 0)
                return 0;
        r = lock_refresh(a);
        if (r < 0)
                return r;
        r = flush_locked(a);
        if (r >= 0 && a->dirty && a->sync_lag_ms > 0 && sync_due(a))
                r = sync_locked(a);
        unlock(a);
        return r;
}

int audit_sync(AuditLog *a)
{
        int r;

        if (a->broken)
                return -EIO;
        if (a->batch_n == 0 && !a->dirty)
                return 0;
        r = lock_refresh(a);
        if (r < 0)
                return r;
        r = flush_locked(a);
        if (r >= 0 && a->dirty)
                r = sync_locked(a);
        unlock(a);
        return r;
}

/* A name "<prefix><UTC time>[.N]" in state_fd that does not exist yet. */
static int free_name(int state_fd, const char *prefix, int64_t usec, char *ret, size_t size)
{
        time_t t = (time_t)(usec / 1000000);
        char stamp[32];
        struct tm tm;
        struct stat st;

        if (!gmtime_r(&t, &tm) || strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm) == 0)
                return -ERANGE;
        for (int i = 0; i < 100; i++) {
                if (i == 0)
                        snprintf(ret, size, "%s%s", prefix, stamp);
                else
                        snprintf(ret, size, "%s%s.%d", prefix, stamp, i);
                if (fstatat(state_fd, ret, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                return 0;
                        return negative_errno();
                }
        }
        return -EEXIST;
}

/* Removes what attach() put in a new log directory that is not used after all. */
static void remove_new_dir(int state_fd, const char *name)
{
        static const char *const files[] = {AUDIT_LOCK, AUDIT_HEAD, AUDIT_HEAD_TMP,
                                            "log.000001.jsonl"};
        _cleanup_close_ int fd = openat(state_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return;
        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                (void)unlinkat(fd, files[i], 0);
        (void)unlinkat(state_fd, name, AT_REMOVEDIR);
}

/*
 * Builds the new log for audit_open_repair() in state/new_name, attached to a and
 * its flush lock held: the audit.break record, synced. Then swaps it with the
 * broken state/audit in one rename (RENAME_EXCHANGE: state/audit never goes
 * missing, so no writer can start a chain of its own there meanwhile) and moves the
 * broken one to moved. The caller holds the broken log's lock.
 */
static int repair_swap(AuditLog *a, const char *new_name, const char *moved, uint64_t max_seq,
                       const AuditVerifyReport *report, const char *reason)
{
        _cleanup_json_ json_t *fields = NULL;
        int r;

        r = attach(a, new_name);
        if (r < 0)
                return r;
        a->broken = false;
        /* The new chain continues the old: seq after every seq it holds, prev the
         * last record it vouches for. */
        a->seq = max_seq;
        memcpy(a->hash, report->last_good_hash, AUDIT_HASH_SIZE);
        fields = json_pack("{s:s, s:s, s:s, s:I}", "reason", reason, "problem", report->message,
                           "moved_to", moved, "last_good_seq", (json_int_t)report->last_good_seq);
        r = fields ? append_record(a, NULL, AUDIT_EVENT_BREAK, fields)
                   : -EINVAL; /* reason or the message is not UTF-8 */
        if (r >= 0)
                r = flush_locked(a);
        if (r >= 0)
                r = sync_locked(a);
        if (r >= 0 && renameat2(a->state_fd, new_name, a->state_fd, AUDIT_DIR, RENAME_EXCHANGE) < 0)
                r = negative_errno();
        if (r < 0) {
                a->broken = true; /* nothing of it is to be written anywhere else */
                detach(a);
                remove_new_dir(a->state_fd, new_name);
                return r;
        }
        /* state/audit is the new log now; the broken one is at new_name. */
        if (renameat2(a->state_fd, new_name, a->state_fd, moved, RENAME_NOREPLACE) < 0 ||
            fsync(a->state_fd) < 0)
                r = negative_errno();
        unlock(a);
        return r;
}

int audit_open_repair(const char *state_dir, const char *reason, const AuditOptions *options,
                      AuditLog **ret)
{
        _cleanup_(audit_closep) AuditLog *a = NULL;
        _cleanup_close_ int dir_fd = -EBADF, lock_fd = -EBADF;
        AuditVerifyReport report = {};
        char moved[64], new_name[64];
        int64_t usec;
        uint64_t max_seq;
        unsigned max_file;
        int r;

        if (!reason || !*reason || strlen(reason) > AUDIT_REASON_MAX)
                return -EINVAL;
        r = log_new(state_dir, options, &a);
        if (r < 0)
                return r;
        for (int attempt = 0;; attempt++) {
                r = attach(a, AUDIT_DIR);
                if (r != -EBADMSG) {
                        if (r < 0)
                                return r;
                        unlock(a);
                        a->broken = false;
                        *ret = TAKE_PTR(a);
                        return 0;
                }
                /* Hold the broken log's lock while it is examined and moved. */
                r = open_dir(a->state_fd, AUDIT_DIR, false, &dir_fd);
                if (r < 0)
                        return r;
                lock_fd = openat(dir_fd, AUDIT_LOCK,
                                 O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
                if (lock_fd < 0)
                        return negative_errno();
                r = lock_byte(lock_fd, F_WRLCK, AUDIT_LOCK_FLUSH, true);
                if (r < 0)
                        return r;
                /* Not audit_verify(): it would take our own lock for a live writer's and
                 * let a torn last line pass as one being written. */
                r = audit_read_at(dir_fd, NULL, NULL, NULL, false, &report);
                if (r != 0)
                        break;
                /* Intact after all (someone mended it meanwhile): open it as it is. */
                if (attempt > 0)
                        return -EBADMSG; /* the end does not check out, the chain does */
                lock_fd = safe_close(lock_fd);
                dir_fd = safe_close(dir_fd);
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
        usec = options && options->clock ? options->clock(options->clock_userdata) : now_usec();
        r = free_name(a->state_fd, AUDIT_DIR ".broken-", usec, moved, sizeof moved);
        if (r < 0)
                return r;
        r = free_name(a->state_fd, AUDIT_DIR ".new-", usec, new_name, sizeof new_name);
        if (r < 0)
                return r;
        r = repair_swap(a, new_name, moved, max_seq, &report, reason);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 1;
}
