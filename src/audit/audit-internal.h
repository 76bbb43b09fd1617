/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared between the writer (log.c) and the reader (walk.c); not a public API. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "audit/audit.h"

#define AUDIT_DIR       "audit"
#define AUDIT_HEAD      "HEAD"
#define AUDIT_HEAD_TMP  "HEAD.tmp"
#define AUDIT_LOCK      "lock"
#define AUDIT_HEAD_MAX  4096u /* bytes of HEAD: ~200 in practice */
#define AUDIT_NAME_SIZE 32u   /* "log.NNNNNN.jsonl" and a NUL */
#define AUDIT_HEX_SIZE  (2 * AUDIT_HASH_SIZE + 1)

/* The bytes of dir/lock that OFD locks are taken on. A writer holds a write lock
 * on AUDIT_LOCK_FLUSH while it reads the tail and appends, rotates or rewrites
 * HEAD, and a read lock on AUDIT_LOCK_OPEN from audit_open() to audit_close(), so
 * readers can tell open writers from a writer in the middle of a write. */
#define AUDIT_LOCK_FLUSH 0
#define AUDIT_LOCK_OPEN  1

/*
 * What dir/lock holds (AUDIT_SHARED_SIZE bytes, zeros when new; writers map it
 * MAP_SHARED): a generation that every writer moves on, under the flush lock and
 * before it changes anything in the directory (appends, rotates, starts a log, or
 * a repair moves the directory away). A writer that finds, under the lock, the
 * generation it left after its own last change knows that no writer changed the
 * log since, and checks only that its file is the size it left it (bytes written
 * by something that is not a writer); any other value, or no magic, and it looks
 * at everything as before (docs/audit.md, "Writing"). Moved on before the change,
 * so a writer that dies in the middle leaves a value nobody has seen.
 */
#define AUDIT_SHARED_MAGIC UINT64_C(0x316b636f6c2e6163) /* "ca.lock1", little-endian */
#define AUDIT_SHARED_SIZE  128u                         /* bytes of dir/lock */
typedef struct AuditShared {
        uint64_t magic;      /* AUDIT_SHARED_MAGIC once a writer moved generation on */
        uint64_t generation; /* moved on by every change, under the flush lock */
        /* Where the chain ends, as the writer that last wrote (or checked) it left
         * it; valid while tail_generation == generation (nobody changed the log
         * since). audit_open() checks that record (its line's hash, at the end of
         * the newest file) instead of walking every record since HEAD. */
        uint64_t tail_generation;
        uint64_t tail_seq;
        uint64_t tail_file;
        uint64_t tail_offset;
        uint64_t tail_end;
        uint8_t tail_hash[AUDIT_HASH_SIZE];
} AuditShared;
_Static_assert(sizeof(AuditShared) <= AUDIT_SHARED_SIZE, "the lock file holds it");

/* The reader's buffer: four line bounds, one read(2) per ~1,300 records of 200
 * bytes. The writer lends its batch buffer (AUDIT_BATCH_MAX) to audit_follow(). */
#define AUDIT_READ_BUF_SIZE (4u * AUDIT_LINE_MAX)

/* jansson's own json_decrefp(), as the tree spells cleanup variables. */
#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

/* Where the log ended at the last sync: the record seq, whose line (newline
 * included) is bytes [offset, end) of file number file, hashes to hash. seq 0: an
 * empty log (file 1, offset = end = 0, hash all zeros). */
typedef struct AuditHead {
        uint64_t seq;
        uint8_t hash[AUDIT_HASH_SIZE];
        unsigned file;
        uint64_t offset;
        uint64_t end;
} AuditHead;

/* "log.000042.jsonl" for n = 42 into buf (AUDIT_NAME_SIZE bytes). */
void audit_file_name(unsigned n, char *buf);

/* Reads and validates dir_fd/HEAD. 0, -ENOENT, -EBADMSG (malformed), or -errno. */
int audit_head_read(int dir_fd, AuditHead *ret);

/* Writes dir_fd/HEAD atomically (HEAD.tmp, fdatasync, rename). 0 or -errno. */
int audit_head_write(int dir_fd, const AuditHead *h);

/* The highest n with a file dir_fd/log.<n>.jsonl (0: none). 0 or -errno. */
int audit_dir_max_file(int dir_fd, unsigned *ret);

/* Whether a writer has dir_fd's log open (or is writing to it): F_OFD_GETLK on
 * both lock bytes, which tests without taking them, so a reader never delays a
 * writer. */
bool audit_writer_active(int dir_fd);

/* Whether a writer is in the middle of a write (holds AUDIT_LOCK_FLUSH). */
bool audit_writer_flushing(int dir_fd);

/* BLAKE2b-256 of a line (without its newline). */
void audit_hash_line(const char *line, size_t len, uint8_t ret[AUDIT_HASH_SIZE]);

void audit_hex(const uint8_t hash[AUDIT_HASH_SIZE], char ret[AUDIT_HEX_SIZE]);

/* Decodes exactly 64 lowercase hex digits. 0 or -EINVAL. */
int audit_unhex(const char *s, uint8_t ret[AUDIT_HASH_SIZE]);

/*
 * The chain walker behind audit_read(), audit_verify() and audit_open(). It reads
 * files file, file+1, ... from offset in the first, checks every line, and stops
 * at the first problem (report filled, -EBADMSG). The fields before "out" are the
 * caller's; seq/hash/have_prev are the link to continue (have_prev false: the first
 * record must start a chain).
 */
typedef struct AuditWalk {
        int dir_fd;
        unsigned file;
        uint64_t offset;
        bool have_prev;
        uint64_t seq;
        uint8_t hash[AUDIT_HASH_SIZE];
        const AuditHead *head; /* NULL: no HEAD to check (or already past it) */
        unsigned max_file;     /* files up to this number must exist */
        bool probe_writer;     /* a torn last line is fine while a writer is active */
        bool hold_last;        /* do not hand on the last record (nothing vouches for it) */
        const AuditFilter *filter;
        AuditRecordFn fn;
        void *userdata;

        /* out: where the last complete line ended, and its record */
        unsigned last_file; /* the last file that exists (0: none) */
        uint64_t last_size; /* bytes of it that hold complete lines */
        uint64_t last_line_offset;
        uint64_t last_line_end;
        unsigned last_line_file; /* 0: no record read */
} AuditWalk;

int audit_walk(AuditWalk *w, AuditVerifyReport *report);

/* audit_read() on an open audit directory; probe_writer false when the caller
 * holds the writer lock itself. report must be zeroed. */
int audit_read_at(int dir_fd, const AuditFilter *filter, AuditRecordFn fn, void *userdata,
                  bool probe_writer, AuditVerifyReport *report);

/*
 * What a writer does under the lock to learn where the log ends now, when other
 * writers may have appended since it last looked: it follows the chain from the
 * end it knows (record seq with line hash hash, ending at byte offset of file
 * file) through every line written since, in this and later files. Each line must
 * carry the next seq and the previous line's hash as "prev" (checked on the bytes
 * the writer writes, else by parsing the line as the walker does), and the last
 * must parse as a valid record. The full check stays audit_verify()'s.
 */
typedef struct AuditFollow {
        int dir_fd;
        unsigned file;   /* in: the file of the known end; out: the last file that exists */
        uint64_t offset; /* in: the known end's offset in it; out: that last file's size */
        uint64_t seq;    /* in/out: the last record's seq (0: an empty log) */
        uint8_t hash[AUDIT_HASH_SIZE]; /* in/out: its line's hash (zeros: none) */
        AuditHead last;                /* out, if records > 0: where the last record is */
        uint64_t records;              /* out: records followed */
} AuditFollow;

/*
 * buf: AUDIT_READ_BUF_SIZE bytes, line: AUDIT_LINE_MAX bytes, both scratch.
 * Returns 0; -EBADMSG if a line does not continue the chain, is not a record, is
 * too long, or the log ends in a torn line or before the known end (the caller
 * holds the lock: no write is in progress); or -errno.
 */
int audit_follow(AuditFollow *f, char *buf, char *line);

/* The highest seq any parseable line of files 1..max_file holds, broken chain or
 * not (0: none): where a new chain must continue so no seq is used twice. */
int audit_scan_max_seq(int dir_fd, unsigned max_file, uint64_t *ret);

/* Sets report->problem and a formatted message; returns -EBADMSG. */
int audit_report(AuditVerifyReport *report, AuditProblem problem, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
