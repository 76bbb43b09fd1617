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
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit-internal.h"
#include "base/fileio.h"
#include "base/macro.h"
#include "base/statedir.h"
#include "base/time-util.h"

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
        int lock_fd;         /* state/audit/lock: read lock AUDIT_LOCK_OPEN held while open */
        AuditShared *shared; /* lock_fd's contents, mapped; NULL: not mapped, stat always */
        uint64_t generation; /* shared->generation after our last look or change */
        int fd;              /* the newest file as last seen, O_APPEND */
        unsigned file;
        uint64_t size;                 /* bytes in that file, as last seen under the lock */
        uint64_t seq;                  /* the chain's last record, as last seen */
        uint8_t hash[AUDIT_HASH_SIZE]; /* its line's (zeros before record 1) */
        AuditHead last;                /* where that record is: HEAD after the next sync */
        bool dirty;                    /* our records not yet named by HEAD */
        uint64_t sync_lag_ms;          /* AuditOptions.sync_lag_ms */
        uint64_t head_seq;             /* the seq HEAD named when we last read or wrote it */
        int64_t head_mtime_ms;         /* HEAD's newest mtime we know (CLOCK_REALTIME); 0: none */
        bool broken;                   /* a failed write could not be undone */
        bool held;                     /* the flush lock kept by audit_flush_hold() */
        uint64_t file_max;
        unsigned files_max;
        int64_t (*clock)(void *userdata);
        void *clock_userdata;
        int64_t stamp_sec;  /* the second stamp holds */
        int64_t batch_usec; /* CLOCK_REALTIME when the last record was appended; 0: a clock */
        char stamp[32];     /* "2024-05-01T12:00:00" */
        /* Records appended and not yet written, each a uint32_t length and its middle
         * (from ,"time" to the end of the fields); batch_lines counts their lines at
         * LINE_OVERHEAD + middle each, at most AUDIT_BATCH_MAX. */
        char *batch;
        size_t batch_len;
        size_t batch_lines;
        unsigned batch_n;
        size_t last_line; /* bytes of the last record appended (LINE_OVERHEAD counted) */
        /* AUDIT_BATCH_MAX bytes: the lines as written; audit_follow()'s read buffer. */
        char *out;
        /* A record's middle being built; one more byte for head_check(), which reads
         * the newline before HEAD's line too; audit_follow()'s line copy. */
        char buf[AUDIT_LINE_MAX + 1];
};

static const char *const reserved_keys[] = {"seq", "time", "app", "event", "prev"};

_Static_assert(AUDIT_BATCH_MAX >= AUDIT_READ_BUF_SIZE, "audit_follow() borrows the batch buffer");
_Static_assert(AUDIT_BATCH_MAX >= 2 * AUDIT_LINE_MAX, "a batch holds the longest record");

static void shared_unmap(AuditShared *s)
{
        if (s)
                (void)munmap(s, AUDIT_SHARED_SIZE);
}

static void shared_unmapp(AuditShared **s)
{
        shared_unmap(*s);
}

/* Maps lock_fd's AuditShared, growing the file to AUDIT_SHARED_SIZE bytes first (a
 * lock file of an older writer is empty). Flush lock held. 0 or -errno. */
static int shared_map(int lock_fd, AuditShared **ret)
{
        struct stat st;
        void *p;

        if (fstat(lock_fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if (st.st_size < (off_t)AUDIT_SHARED_SIZE && ftruncate(lock_fd, AUDIT_SHARED_SIZE) < 0)
                return negative_errno();
        p = mmap(NULL, AUDIT_SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, lock_fd, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        *ret = p;
        return 0;
}

/* Moves the generation on, before a change (AuditShared): every other writer looks
 * at the whole end again at its next flush. Flush lock held. */
static void shared_bump(AuditShared *s)
{
        if (!s)
                return;
        /* Plain stores: the lock's system calls order them for the other writers. */
        s->generation++;
        s->magic = AUDIT_SHARED_MAGIC;
}

static int head_check(int dir_fd, const AuditHead *h, char *buf);

/* Leaves where the chain ends (a->last, the newest record) for the next writer's
 * audit_open() (AuditShared). Flush lock held, a->generation current. */
static void shared_store_tail(AuditLog *a)
{
        AuditShared *s = a->shared;

        if (!s || s->magic != AUDIT_SHARED_MAGIC || s->generation != a->generation)
                return;
        s->tail_seq = a->last.seq;
        s->tail_file = a->last.file;
        s->tail_offset = a->last.offset;
        s->tail_end = a->last.end;
        memcpy(s->tail_hash, a->last.hash, AUDIT_HASH_SIZE);
        s->tail_generation = s->generation;
}

/*
 * The end of the chain as the lock file tells it, if it checks out: nobody changed
 * the log since it was stored, it is at or after HEAD, in the newest file, which
 * ends right after it, and its line is there with its hash and seq. Then the walk
 * from HEAD can be skipped: every record before it was checked by the writer that
 * appended after it (docs/audit.md, "Writing"). Flush lock held.
 */
static bool shared_tail(const AuditShared *s, int dir_fd, const AuditHead *head, unsigned max_file,
                        char *buf, AuditHead *ret)
{
        char name[AUDIT_NAME_SIZE], prefix[32];
        AuditHead t;
        struct stat st;
        int n;

        if (!s || s->magic != AUDIT_SHARED_MAGIC || s->tail_generation != s->generation ||
            s->tail_seq <= head->seq || s->tail_file != max_file || s->tail_file < head->file ||
            s->tail_offset >= s->tail_end || s->tail_end - s->tail_offset > AUDIT_LINE_MAX + 1)
                return false;
        t = (AuditHead){.seq = s->tail_seq,
                        .file = (unsigned)s->tail_file,
                        .offset = s->tail_offset,
                        .end = s->tail_end};
        memcpy(t.hash, s->tail_hash, AUDIT_HASH_SIZE);
        audit_file_name(t.file, name);
        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
            (uint64_t)st.st_size != t.end)
                return false;
        if (head_check(dir_fd, &t, buf) < 0)
                return false;
        n = snprintf(prefix, sizeof prefix, "{\"seq\":%" PRIu64 ",", t.seq);
        if (strncmp(buf + (t.offset > 0), prefix, (size_t)n) != 0)
                return false;
        *ret = t;
        return true;
}

/* The generation a writer saw last is still there: nobody changed the log since. */
static bool shared_quiet(const AuditLog *a)
{
        return a->shared && a->shared->magic == AUDIT_SHARED_MAGIC &&
               a->shared->generation == a->generation;
}

/* Closes the log's directory and files, and with them its locks. */
static void detach(AuditLog *a)
{
        a->held = false;
        shared_unmap(a->shared);
        a->shared = NULL;
        a->fd = safe_close(a->fd);
        a->lock_fd = safe_close(a->lock_fd);
        a->dir_fd = safe_close(a->dir_fd);
}

static int lock_refresh(AuditLog *a);
static void unlock(AuditLog *a);
static bool sync_due(AuditLog *a, int64_t now_usec_hint);
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
                if (sync_due(a, 0))
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

        if (RETRY_EINTR(fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl)) == 0)
                return 0;
        return errno == EAGAIN || errno == EACCES ? -EBUSY : negative_errno();
}

static void unlock(AuditLog *a)
{
        a->held = false;
        if (a->lock_fd >= 0)
                (void)lock_byte(a->lock_fd, F_UNLCK, AUDIT_LOCK_FLUSH, false);
}

/* pread() of exactly n bytes; -EBADMSG if the file is shorter. */
static int pread_exact(int fd, char *buf, size_t n, uint64_t offset)
{
        while (n > 0) {
                ssize_t k = RETRY_EINTR(pread(fd, buf, n, (off_t)offset));

                if (k < 0)
                        return negative_errno();
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
        /* Records name apps and what they did: for root's eyes only, and written
         * by root only (a chain someone else could have put there proves nothing). */
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_uid != geteuid())
                return owned_check(name, &st);
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
        a->head_mtime_ms = now_realtime_us() / 1000;
        return 0;
}

/*
 * Whether HEAD should be brought up to date now. Always without a sync lag;
 * with one, once HEAD is sync_lag_ms old (its mtime: any writer's sync counts) or
 * AUDIT_SYNC_LAG_RECORDS records behind what we know. Lock held. HEAD is only ever
 * rewritten, so its mtime only grows: while the newest mtime we know of (from a
 * stat, or our own sync) is younger than the lag, HEAD is too, and no stat is made.
 * now_usec_hint: CLOCK_REALTIME of a moment ago (the batch's last record; a
 * flush's HEAD is then at most that much late), or 0: read the clock.
 */
static bool sync_due(AuditLog *a, int64_t now_usec_hint)
{
        int64_t now_ms, mtime_ms;
        struct stat st;

        if (a->sync_lag_ms == 0 || a->seq - a->head_seq >= AUDIT_SYNC_LAG_RECORDS)
                return true;
        now_ms = (now_usec_hint > 0 ? now_usec_hint : now_realtime_us()) / 1000;
        if (a->head_mtime_ms > 0 && now_ms >= a->head_mtime_ms &&
            (uint64_t)(now_ms - a->head_mtime_ms) < a->sync_lag_ms)
                return false;
        if (fstatat(a->dir_fd, AUDIT_HEAD, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return true;
        mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        a->head_mtime_ms = mtime_ms;
        return now_ms < mtime_ms || (uint64_t)(now_ms - mtime_ms) >= a->sync_lag_ms;
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
        _cleanup_(shared_unmapp) AuditShared *shared = NULL;
        AuditVerifyReport report = {};
        AuditHead head = {.file = 1}, tail;
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
        r = shared_map(lock_fd, &shared);
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
                shared_bump(shared);
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
        if (shared_tail(shared, dir_fd, &head, max_file, a->buf, &tail)) {
                a->fd = file_open(dir_fd, tail.file, false);
                if (a->fd < 0)
                        return a->fd;
                a->file = tail.file;
                a->size = tail.end;
                a->seq = tail.seq;
                memcpy(a->hash, tail.hash, AUDIT_HASH_SIZE);
                a->last = tail;
                a->head_seq = head.seq;
                a->dirty = true; /* tail.seq > head.seq */
                goto done;
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
                shared_bump(shared);
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
        a->shared = TAKE_PTR(shared);
        a->generation = a->shared->generation;
        shared_store_tail(a);
        a->head_mtime_ms = 0;
        a->dir_dev = st.st_dev;
        a->dir_ino = st.st_ino;
        if (a->dirty && sync_due(a, 0)) {
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
 * appended or rotated since we last looked) and checks what they wrote. quiet: no
 * writer changed anything since (shared_quiet()), so no file can have been started;
 * our file is still checked for bytes something else wrote, or cut. */
static int refresh(AuditLog *a, bool quiet)
{
        char name[AUDIT_NAME_SIZE];
        AuditFollow f;
        struct stat st;
        int r;

        /* The common case costs an lseek (quiet), or a stat and an lseek: no new file,
         * ours the size we left it. lseek(SEEK_END), not fstat(): a stat of the file
         * asks for its mtime, and then the next write must store a fine-grained one
         * (multigrain timestamps), which costs that write a journal update: 0.9 us
         * against 0.5 for lseek and write, measured on the development VM (ext4). */
        if (!quiet)
                audit_file_name(a->file + 1, name);
        if (quiet || fstatat(a->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                off_t end;

                if (!quiet && errno != ENOENT)
                        return negative_errno();
                end = lseek(a->fd, 0, SEEK_END);
                if (end < 0)
                        return negative_errno();
                if ((uint64_t)end == a->size)
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
 * the tail up to date, re-attaching if state/audit is another directory now (a
 * repair moves the generation of the old one on). Returns 0 with the lock held, or
 * -errno without it. */
static int lock_refresh(AuditLog *a)
{
        int r;

        if (a->dir_fd < 0)
                return attach(a, AUDIT_DIR);
        r = lock_byte(a->lock_fd, F_WRLCK, AUDIT_LOCK_FLUSH, true);
        if (r < 0)
                return r;
        if (shared_quiet(a))
                r = refresh(a, true);
        else {
                r = dir_moved(a);
                if (r > 0)
                        return attach(a, AUDIT_DIR); /* closing the old lock fd releases it */
                if (r == 0)
                        r = refresh(a, false);
                if (r == 0 && a->shared)
                        a->generation = a->shared->generation;
        }
        if (r < 0)
                unlock(a);
        return r;
}

/* Allocates a log handle on state_dir (created 0711 if missing, checked as
 * state_dir_open() does), not attached. */
static int log_new(const char *state_dir, const AuditOptions *o, AuditLog **ret)
{
        _cleanup_(audit_closep) AuditLog *a = NULL;

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
        /* Ours alone, as every file cella trusts in it (base/statedir.h). */
        a->state_fd = state_dir_open(state_dir, true);
        if (a->state_fd < 0)
                return a->state_fd;
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

/* The decimal digits of v into buf (20 bytes at least); their count. */
static size_t u64_format(uint64_t v, char *buf)
{
        char tmp[20];
        size_t n = 0;

        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        for (size_t i = 0; i < n; i++)
                buf[i] = tmp[n - 1 - i];
        return n;
}

#define TIME_LEN 27u /* "2024-05-01T12:00:00.000000Z" */

/* The record's time as RFC 3339 UTC with microseconds into buf (TIME_LEN bytes, no
 * NUL): gmtime_r() once a second, not per record. */
static int time_format(AuditLog *a, char buf[TIME_LEN])
{
        int64_t usec = a->clock ? a->clock(a->clock_userdata) : now_realtime_us();
        int64_t sec = usec / 1000000;
        unsigned frac;

        if (usec < 0)
                return -ERANGE;
        a->batch_usec = a->clock ? 0 : usec;
        if (sec != a->stamp_sec || !a->stamp[0]) {
                if (!audit_format_time(sec * 1000000, a->stamp, sizeof a->stamp))
                        return -ERANGE;
                a->stamp[19] = 0; /* "2024-05-01T12:00:00" */
                a->stamp_sec = sec;
        }
        memcpy(buf, a->stamp, 19);
        buf[19] = '.';
        frac = (unsigned)(usec % 1000000);
        for (int i = 25; i >= 20; i--, frac /= 10)
                buf[i] = (char)('0' + frac % 10);
        buf[26] = 'Z';
        return 0;
}

/* A record's middle as it is built into a->buf: len bytes of at most max. */
typedef struct Middle {
        char *p;
        size_t len, max;
} Middle;

static int middle_put(Middle *m, const char *s, size_t n)
{
        if (n > m->max - m->len)
                return -E2BIG;
        memcpy(m->p + m->len, s, n);
        m->len += n;
        return 0;
}

#define MIDDLE_PUT(m, lit) middle_put(m, lit, sizeof lit - 1)

/* json_dumpb() of v (any JSON value) at the end of m, compact, keys in order. */
static int middle_dump(Middle *m, const json_t *v)
{
        size_t k = json_dumpb(v, m->p + m->len, m->max - m->len,
                              JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

        if (k == 0)
                return -EINVAL;
        if (k > m->max - m->len)
                return -E2BIG;
        m->len += k;
        return 0;
}

/* A JSON string of s as jansson dumps it: printable ASCII without " and \ is copied
 * as it is (what jansson writes for it), anything else goes through jansson, which
 * escapes it, or refuses it (-EINVAL) if it is not UTF-8. */
static int middle_string(Middle *m, const char *s)
{
        _cleanup_json_ json_t *j = NULL;
        size_t n = 0;

        for (; s[n]; n++)
                if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e || s[n] == '"' ||
                    s[n] == '\\')
                        break;
        if (!s[n]) {
                if (n + 2 > m->max - m->len)
                        return -E2BIG;
                m->p[m->len++] = '"';
                memcpy(m->p + m->len, s, n);
                m->len += n;
                m->p[m->len++] = '"';
                return 0;
        }
        j = json_string(s);
        if (!j)
                return -EINVAL;
        return middle_dump(m, j);
}

/* ,"key": at the end of m. */
static int middle_key(Middle *m, const char *key)
{
        int r = MIDDLE_PUT(m, ",");

        if (r == 0)
                r = middle_string(m, key);
        if (r == 0)
                r = MIDDLE_PUT(m, ":");
        return r;
}

/*
 * Starts a record's middle in a->buf: ,"time":"...","app":...,"event":"...", what
 * stands between the seq and the fields. The line's seq and ,"prev" are only known
 * when the batch is written. The middle may grow to m->max bytes: the longest line
 * with it fits AUDIT_LINE_MAX. app and event need no escaping (their character sets
 * are checked), and the rest are digits.
 */
static int middle_start(AuditLog *a, const char *app, const char *event, Middle *m)
{
        char time[TIME_LEN];
        int r;

        r = time_format(a, time);
        if (r < 0)
                return r;
        *m = (Middle){.p = a->buf, .max = AUDIT_LINE_MAX - LINE_OVERHEAD};
        /* At most ~40 + AUDIT_APP_MAX + AUDIT_EVENT_MAX bytes: fits. */
        (void)MIDDLE_PUT(m, ",\"time\":\"");
        (void)middle_put(m, time, TIME_LEN);
        (void)MIDDLE_PUT(m, "\",\"app\":");
        if (app) {
                (void)MIDDLE_PUT(m, "\"");
                (void)middle_put(m, app, strlen(app));
                (void)MIDDLE_PUT(m, "\"");
        } else
                (void)MIDDLE_PUT(m, "null");
        (void)MIDDLE_PUT(m, ",\"event\":\"");
        (void)middle_put(m, event, strlen(event));
        return MIDDLE_PUT(m, "\"");
}

/* 1..max bytes of the given characters; event names must start with a letter. */
static bool name_is_valid(const char *s, size_t max, const char *charset)
{
        size_t n = s ? strnlen(s, max + 1) : 0;

        return n > 0 && n <= max && strspn(s, charset) == n;
}

static bool key_is_reserved(const char *key)
{
        for (size_t i = 0; i < ELEMENTSOF(reserved_keys); i++)
                if (strcmp(key, reserved_keys[i]) == 0)
                        return true;
        return false;
}

/* What every record must be: a writable log, a valid event name and app id. */
static int record_check(AuditLog *a, const char *app, const char *event)
{
        if (a->broken)
                return -EIO;
        if (!name_is_valid(event, AUDIT_EVENT_MAX, EVENT_CHARS) || event[0] < 'a' || event[0] > 'z')
                return -EINVAL;
        if (app && !name_is_valid(app, AUDIT_APP_MAX, APP_CHARS))
                return -EINVAL;
        return 0;
}

/* Adds the middle of n bytes in a->buf to the batch, writing the batch first if it
 * would not fit. */
static int batch_add(AuditLog *a, size_t n)
{
        uint32_t len32;
        int r;

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
        a->last_line = LINE_OVERHEAD + n;
        return 0;
}

size_t audit_last_append_size(const AuditLog *a)
{
        return a ? a->last_line : 0;
}

/*
 * A record whose fields are the JSON object fields (or none). Its middle is written
 * out by hand around jansson's dump of fields: the same bytes json_dumpb() of the
 * whole object would give (JSON_COMPACT, keys in order), but building that object
 * cost 5.3 us a record against 0.9 us for dumping fields alone (docs/audit.md).
 */
static int append_record(AuditLog *a, const char *app, const char *event, json_t *fields)
{
        const char *key;
        json_t *value;
        Middle m;
        int r;

        r = record_check(a, app, event);
        if (r < 0)
                return r;
        if (fields && !json_is_object(fields))
                return -EINVAL;
        json_object_foreach(fields, key, value)
        {
                if (key_is_reserved(key))
                        return -EINVAL;
        }
        r = middle_start(a, app, event, &m);
        if (r < 0)
                return r;
        if (fields && json_object_size(fields) > 0) {
                /* "{...}" at the end: its "{" becomes ",", its "}" is dropped. */
                size_t at = m.len;

                m.max++; /* room for the "}" */
                r = middle_dump(&m, fields);
                if (r < 0)
                        return r == -EINVAL ? -ENOMEM : r;
                m.p[at] = ',';
                m.len--;
                m.max--;
        }
        return batch_add(a, m.len);
}

int audit_append(AuditLog *a, const char *app, const char *event, json_t *fields)
{
        if (event && strncmp(event, "audit.", 6) == 0)
                return -EINVAL;
        return append_record(a, app, event, fields);
}

/* An integer as jansson writes it (JSON_INTEGER_FORMAT, "%lld"). */
static int middle_int(Middle *m, int64_t v)
{
        char num[21];
        size_t n = 0;

        if (v < 0)
                num[n++] = '-';
        n += u64_format(v < 0 ? -(uint64_t)v : (uint64_t)v, num + n);
        return middle_put(m, num, n);
}

int audit_append_fields(AuditLog *a, const char *app, const char *event, const AuditField *fields,
                        size_t n_fields, const json_t *extra)
{
        const char *key;
        json_t *value;
        Middle m;
        int r;

        if (!a || (n_fields > 0 && !fields) || n_fields > AUDIT_FIELDS_MAX)
                return -EINVAL;
        if (event && strncmp(event, "audit.", 6) == 0)
                return -EINVAL;
        r = record_check(a, app, event);
        if (r < 0)
                return r;
        if (extra && !json_is_object(extra))
                return -EINVAL;
        for (size_t i = 0; i < n_fields; i++) {
                if (!fields[i].key || key_is_reserved(fields[i].key) ||
                    (fields[i].type != AUDIT_FIELD_STRING && fields[i].type != AUDIT_FIELD_INT))
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(fields[i].key, fields[j].key) == 0)
                                return -EINVAL;
        }
        json_object_foreach((json_t *)extra, key, value)
        {
                if (key_is_reserved(key))
                        return -EINVAL;
        }
        r = middle_start(a, app, event, &m);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_fields && r == 0; i++) {
                const AuditField *f = &fields[i];

                r = middle_key(&m, f->key);
                if (r < 0)
                        break;
                if (f->type == AUDIT_FIELD_INT)
                        r = middle_int(&m, f->num);
                else if (f->str)
                        r = middle_string(&m, f->str);
                else
                        r = MIDDLE_PUT(&m, "null");
        }
        /* Then extra's keys that fields do not have, in extra's order: what
         * json_object_update_missing() of a fields object would give. */
        json_object_foreach((json_t *)extra, key, value)
        {
                bool have = false;

                if (r < 0)
                        break;
                for (size_t i = 0; i < n_fields && !have; i++)
                        have = strcmp(key, fields[i].key) == 0;
                if (have)
                        continue;
                r = middle_key(&m, key);
                if (r == 0)
                        r = middle_dump(&m, value);
        }
        if (r < 0)
                return r;
        return batch_add(a, m.len);
}

/* Writes n bytes of buf at the end of the current file. A short write (disk full)
 * is finished or undone, never left: lock held, so the end is ours. */
static int write_all(AuditLog *a, const char *buf, size_t n)
{
        size_t done = 0;

        while (done < n) {
                ssize_t k = RETRY_EINTR(write(a->fd, buf + done, n - done));

                if (k < 0) {
                        int r = negative_errno();

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

        if (a->batch_len > 0) {
                shared_bump(a->shared);
                if (a->shared)
                        a->generation = a->shared->generation;
        }

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
                        d = u64_format(seq + 1, num);
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
        if (n_done > 0)
                shared_store_tail(a);
        memmove(a->batch, a->batch + pos, a->batch_len - pos);
        a->batch_len -= pos;
        a->batch_lines -= lines_done;
        a->batch_n -= n_done;
        return r;
}

/* audit_flush(); hold: on success with records written, keep the flush lock
 * (returns 1) for audit_unlock(). */
static int flush(AuditLog *a, bool hold)
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
        if (r >= 0 && a->dirty && a->sync_lag_ms > 0 && sync_due(a, a->batch_usec))
                r = sync_locked(a);
        if (r >= 0 && hold) {
                a->held = true;
                return 1;
        }
        unlock(a);
        return r;
}

int audit_flush(AuditLog *a)
{
        return flush(a, false);
}

int audit_flush_hold(AuditLog *a)
{
        return flush(a, true);
}

void audit_unlock(AuditLog *a)
{
        if (a && a->held)
                unlock(a);
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
        usec = options && options->clock ? options->clock(options->clock_userdata)
                                         : now_realtime_us();
        r = free_name(a->state_fd, AUDIT_DIR ".broken-", usec, moved, sizeof moved);
        if (r < 0)
                return r;
        r = free_name(a->state_fd, AUDIT_DIR ".new-", usec, new_name, sizeof new_name);
        if (r < 0)
                return r;
        {
                /* Writers open on the broken log look again at their next flush, and
                 * find audit/ moved: the generation moves on before the swap. */
                _cleanup_(shared_unmapp) AuditShared *old = NULL;

                r = shared_map(lock_fd, &old);
                if (r < 0)
                        return r;
                shared_bump(old);
        }
        r = repair_swap(a, new_name, moved, max_seq, &report, reason);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 1;
}
