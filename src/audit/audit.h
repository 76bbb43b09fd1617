/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The audit log (docs/design.md section 9; the format is documented in docs/audit.md):
 * an append-only, hash-chained JSON-lines record of every decision the supervisor
 * makes. Under <state>/audit/ (mode 0700):
 *
 *   log.000001.jsonl, log.000002.jsonl, ...  the records, one JSON object a line;
 *                                             the highest number is the file being
 *                                             written, the chain runs across files
 *   HEAD                                      where the log ended at the last sync:
 *                                             seq, line hash, file and byte range
 *   lock                                      writers' OFD locks (the file stays empty)
 *
 * Each record is {"seq":N,"time":"...","app":...,"event":"...", <fields>, "prev":"..."}
 * where prev is the BLAKE2b-256 (hex) of the previous record's line, as written,
 * without its newline. A changed, removed or reordered record breaks the chain; a
 * log cut short of the record HEAD names is reported as truncated.
 *
 * Any number of writers, in any processes sharing the state directory (cella run,
 * cella boot, cella grant), append to the one chain: records are batched in memory
 * and written by audit_flush() under an OFD lock on audit/lock, which numbers and
 * chains them onto wherever the log ends by then (see docs/audit.md, "Writing").
 * Readers take no lock and may run at any time.
 *
 * What the chain cannot do: whoever can write the state directory (root on the
 * host) can rewrite every record and HEAD consistently. See docs/audit.md.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Bounds. A record line, newline included, is at most AUDIT_LINE_MAX bytes: a record
 * summarises a call whose body is itself at most 64 KiB (docs/design.md section 6), so a
 * longer one is a bug in the caller; audit_append() refuses it and the reader
 * reports it. A file is rotated before it would pass AUDIT_FILE_MAX bytes (~80,000
 * records of 200 bytes), which keeps the unit a reader or a copy handles small.
 * File numbers have six digits, so that `ls` and `cat log.*.jsonl` list them in
 * chain order: at most AUDIT_FILES_MAX files (16 TiB of log).
 */
#define AUDIT_LINE_MAX  (64u * 1024u)
#define AUDIT_FILE_MAX  (16u * 1024u * 1024u)
#define AUDIT_FILES_MAX 999999u
#define AUDIT_APP_MAX   128u /* bytes of an app id: MANIFEST_ID_MAX */
/* Bytes of records an AuditLog holds before audit_append() writes them itself: at
 * ~250 bytes a record, ~1,000 records, one write(2). */
#define AUDIT_BATCH_MAX (256u * 1024u)
#define AUDIT_EVENT_MAX 64u /* bytes of an event name */

/* BLAKE2b-256: crypto_generichash_BYTES, as hex in "prev" and HEAD. */
#define AUDIT_HASH_SIZE 32u

/* Event names the supervisor writes. Names starting "audit." are the log's own. */
#define AUDIT_EVENT_CALL      "call"        /* a broker call: op, decision, errno */
#define AUDIT_EVENT_LIFECYCLE "lifecycle"   /* started, exited, killed, frozen, ... */
#define AUDIT_EVENT_SECCOMP   "seccomp"     /* seccomp-denied system call counts */
#define AUDIT_EVENT_GRANT     "grant"       /* a permission granted or revoked */
#define AUDIT_EVENT_CONTROL   "control"     /* who asked cellad's control API for a change */
#define AUDIT_EVENT_BREAK     "audit.break" /* first record after audit_open_repair() */
/* Records not written, counted: why "repeated" (audit_coalesce_append()) or "budget". */
#define AUDIT_EVENT_SUPPRESSED "suppressed"

typedef struct AuditLog AuditLog;

/* Writer options; a zero field takes the default. Meant for tests and tools. */
typedef struct AuditOptions {
        uint64_t file_max;  /* rotation bound in bytes, at most AUDIT_FILE_MAX */
        unsigned files_max; /* file count bound, at most AUDIT_FILES_MAX */
        /* Wall-clock time for new records, in microseconds since the Unix epoch;
         * NULL: CLOCK_REALTIME. */
        int64_t (*clock)(void *userdata);
        void *clock_userdata;
        /* 0: every audit_sync() and audit_close() makes the records durable and moves
         * HEAD (the default). > 0: audit_open(), audit_flush() and audit_close() sync
         * only once HEAD is this many ms old (any writer's sync counts) or
         * AUDIT_SYNC_LAG_RECORDS records behind; audit_sync() still syncs at once. The
         * supervisor's choice (docs/audit.md, "When to sync"). */
        uint64_t sync_lag_ms;
} AuditOptions;

/* Records HEAD may lag behind with AuditOptions.sync_lag_ms: bounds what an
 * audit_open() that cannot take the end from the lock file walks (about 8 us a
 * record), against one sync (two fdatasyncs, ~1.2 ms) every 256 records. */
#define AUDIT_SYNC_LAG_RECORDS 256u

/*
 * Opens the audit log under state_dir/audit for appending, creating state_dir
 * (0711), audit/ (0700) and the first file if missing. Other writers may have it
 * open too: this one takes the lock only while it checks the end of the log (it
 * waits for a writer in the middle of a write, microseconds) and holds a shared
 * "open" lock until audit_close(), which readers see. It checks the end of the
 * log, not all of it: the record HEAD names must be where HEAD says with the hash
 * HEAD says, and every record after it (not yet synced by whoever wrote it, or
 * left by a crash) must continue the chain; records after HEAD are then synced.
 * The full check is audit_verify(). options may be NULL.
 * Returns 0 and *ret (free with audit_close()); -EBADMSG if the end of the log
 * does not check out (the log was changed, truncated, or a write was cut short):
 * the caller must not extend a broken chain, audit_verify() says what is wrong and
 * audit_open_repair() starts a new one; -EINVAL for bad options; or -errno of
 * mkdir/open/read/write/fcntl.
 */
int audit_open(const char *state_dir, const AuditOptions *options, AuditLog **ret);

/*
 * Like audit_open(), but if the log is broken (-EBADMSG), moves state_dir/audit
 * aside to state_dir/audit.broken-<UTC time> (kept whole, for inspection; nothing
 * is deleted) and starts a new log whose first record is an "audit.break" event
 * with fields reason (the caller's, required, at most 1024 bytes), problem (what
 * audit_verify() found), moved_to (the folder name), last_good_seq (the last record
 * the old chain vouches for). That record's seq continues after the highest seq the
 * old log holds and its prev is the hash of the last good record, so the new chain
 * is tied to the old one. The new log is built beside the old one (audit.new-<UTC
 * time>) and swapped in with one rename(2) (RENAME_EXCHANGE) while the old log's
 * lock is held, so state_dir/audit never goes missing; writers open in other
 * processes move to the new log at their next flush. Returns 0 (the log was
 * intact: no break written) or 1 (repaired) and *ret; -EINVAL without a reason;
 * otherwise as audit_open().
 */
int audit_open_repair(const char *state_dir, const char *reason, const AuditOptions *options,
                      AuditLog **ret);

/*
 * Adds one record to a's batch: seq (numbered when written), time (now, RFC 3339
 * UTC with microseconds: when the record was appended), app (the app id, or null
 * when app is NULL: the supervisor's own record), event, then the keys of fields
 * in their order, then prev (the hash of whatever record precedes it in the file
 * when written). fields (a JSON object or NULL) is borrowed: not changed, not
 * stolen. Nothing reaches the file until audit_flush() (or audit_sync(), or
 * audit_close()), except that a batch that would pass AUDIT_BATCH_MAX bytes (lines
 * counted with a 19-digit seq) is flushed first. No system call otherwise.
 * Returns 0; -EINVAL for an event name that is not 1..AUDIT_EVENT_MAX bytes of
 * [a-z0-9._-] starting with a letter, or starts "audit.", for an app id that is
 * not 1..AUDIT_APP_MAX bytes of [A-Za-z0-9._-] (what manifest ids are made of), for
 * fields that is not an object or uses a reserved key (seq, time, app, event,
 * prev); -E2BIG if the line, its seq counted at 19 digits (the most an int64
 * has), would be longer than AUDIT_LINE_MAX; -EIO if an earlier failed write could
 * not be undone (the log refuses further records); or audit_flush()'s error when
 * the batch was full and could not be written. On failure the record is not
 * added.
 */
int audit_append(AuditLog *a, const char *app, const char *event, json_t *fields);

/* One field of audit_append_fields(): a string (UTF-8; NULL writes null) or an
 * integer. */
typedef enum AuditFieldType {
        AUDIT_FIELD_STRING,
        AUDIT_FIELD_INT,
} AuditFieldType;

typedef struct AuditField {
        const char *key;
        AuditFieldType type;
        const char *str; /* AUDIT_FIELD_STRING */
        int64_t num;     /* AUDIT_FIELD_INT */
} AuditField;

#define AUDIT_FIELDS_MAX 32u /* fields of one audit_append_fields() */

/*
 * audit_append() without a JSON object to build: the record's fields are fields[0..
 * n_fields) in their order, then the keys of extra (a JSON object or NULL, borrowed)
 * that fields[] does not have, in extra's order. The line is byte for byte what
 * audit_append() writes for the object json_pack() and json_object_update_missing(
 * , extra) would build, at a fraction of the cost: the broker's record of every call
 * (op, right, decision, errno). Returns as audit_append(); -EINVAL also for more
 * than AUDIT_FIELDS_MAX fields, a NULL or repeated key, a string or key that is not
 * UTF-8 (which jansson refuses too), or extra that is not an object.
 */
int audit_append_fields(AuditLog *a, const char *app, const char *event, const AuditField *fields,
                        size_t n_fields, const json_t *extra);

/* Bytes the record last appended to a will take in the log, its newline included
 * and its seq counted at 19 digits (so at most 18 bytes more than it will): what
 * the coalescer charges to a source's budget. 0 before any. */
size_t audit_last_append_size(const AuditLog *a);

/*
 * Writes a's batch: takes the writer lock (waiting while another writer writes;
 * F_OFD_SETLKW, unbounded, but writers hold it only for a flush), learns where the
 * log ends now (one lseek if no other writer changed the log since, as the
 * generation in audit/lock tells, docs/audit.md; otherwise it checks
 * what they wrote: every line continues the chain and the last is a valid
 * record), numbers and chains the records onto that end, writes them with one
 * write(2) to the newest file (opened O_APPEND; a batch that reaches the rotation
 * bound is split, and the next file started under the lock), and releases the
 * lock. Records are in the chain in the order appended, each batch contiguous.
 * From then on they survive a crash of the process; a crash of the host once
 * audit_sync() returns. Nothing pending: returns 0 at once, no system call. Meant
 * once per event-loop iteration, before replies are sent.
 * Returns 0; -EBADMSG if the log's end does not check out (as audit_open());
 * -ENOSPC at the file count bound; -EOVERFLOW past seq INT64_MAX; -EIO as
 * audit_append(); -errno of stat/open/read/write/fdatasync/fcntl. On failure the
 * records not written stay in the batch (a later flush retries them); those
 * written are in the chain.
 */
int audit_flush(AuditLog *a);

/*
 * audit_flush(), except that when it wrote records (returns 1) the writer lock
 * stays held until audit_unlock(): for the broker, which sends the replies to the
 * calls it just recorded in between, so that releasing the lock (a system call) is
 * not on the way of every reply. Other writers wait for it meanwhile: hold it only
 * for a few sends. A flush or sync of a in between releases it too. Returns 1 (lock
 * held), 0 (nothing to write: no lock held), or audit_flush()'s errors (no lock
 * held).
 */
int audit_flush_hold(AuditLog *a);

/* Releases the writer lock audit_flush_hold() kept; nothing if it is not held. Takes
 * NULL. */
void audit_unlock(AuditLog *a);

/*
 * audit_flush(), then, under the same lock, makes the log durable (fdatasync) and
 * rewrites HEAD (temp file, fdatasync, rename) to name the log's last record, which
 * may be another writer's: HEAD only moves forward. Costs two fdatasync()s when
 * this handle wrote records since its last sync (0.66 ms on the development VM's
 * ext4, docs/audit.md), nothing otherwise: call it when the event loop is about to
 * block with records pending, at most every 100 ms under load, and before exit;
 * never per record. Records after HEAD are checked at audit_open() but cannot be
 * told missing if removed: HEAD is what makes truncation detectable. Returns 0 or
 * audit_flush()'s errors (the log stays usable).
 */
int audit_sync(AuditLog *a);

/* The seq of the log's last record as a last saw it: after audit_flush(), that of
 * its own last record; after audit_open(), the end of the log. Records still in the
 * batch have no seq yet. 0 for an empty log. */
uint64_t audit_last_seq(const AuditLog *a);

/* Syncs (errors are lost: call audit_sync() first to see them; records it cannot
 * write are lost), releases the locks and frees. Takes NULL; returns NULL. */
AuditLog *audit_close(AuditLog *a);

static inline void audit_closep(AuditLog **a)
{
        audit_close(*a);
}

/* What a check of the log found first. */
typedef enum AuditProblem {
        AUDIT_PROBLEM_NONE,
        AUDIT_PROBLEM_IO,            /* a file could not be read (report.message says) */
        AUDIT_PROBLEM_HEAD,          /* HEAD missing while records exist, or malformed */
        AUDIT_PROBLEM_MISSING_FILE,  /* a log file in the chain is gone */
        AUDIT_PROBLEM_BAD_RECORD,    /* a line that is not a valid record, or too long */
        AUDIT_PROBLEM_SEQ,           /* seq not previous + 1: records removed or repeated */
        AUDIT_PROBLEM_PREV,          /* prev does not match the previous line: changed */
        AUDIT_PROBLEM_TORN,          /* the log ends in a line without its newline */
        AUDIT_PROBLEM_TRUNCATED,     /* the log ends before the record HEAD names */
        AUDIT_PROBLEM_HEAD_MISMATCH, /* the record at HEAD's position is not HEAD's */
        _AUDIT_PROBLEM_MAX,
} AuditProblem;

/* Filled by audit_verify() and audit_read(), on success and on -EBADMSG. */
typedef struct AuditVerifyReport {
        uint64_t records;   /* records read whose chain links checked out */
        uint64_t first_seq; /* seq of the first record (0: none) */
        uint64_t last_seq;  /* seq of the last record read */
        unsigned files;     /* log files read */
        uint64_t head_seq;  /* seq HEAD names (0: empty log or no HEAD) */
        /* and its line's hash: kept off the host, the two pin the log as it is now */
        uint8_t head_hash[AUDIT_HASH_SIZE];
        bool starts_with_break; /* the first record is an audit.break (a repaired log) */
        bool writer_active;     /* a writer had the log open when it was read: records after
                                   HEAD are expected (they are checked all the same), and a
                                   last line still being written is not a problem */
        AuditProblem problem;
        bool after_head;        /* the problem lies after the record HEAD names: consistent
                                   with a crash between audit_sync() calls */
        char file[32];          /* file of the problem, e.g. "log.000003.jsonl" */
        uint64_t line;          /* 1-based line in that file (0: not about a line) */
        uint64_t seq;           /* seq of the record with the problem, when known */
        uint64_t last_good_seq; /* last record the chain vouches for */
        uint8_t last_good_hash[AUDIT_HASH_SIZE]; /* hash of its line */
        uint64_t max_seq;                        /* highest seq seen, HEAD's included */
        char message[512]; /* one sentence for a person: what, where, what it means */
} AuditVerifyReport;

/* "prev", "seq", ...: a short name for problem, for JSON output. */
const char *audit_problem_to_string(AuditProblem problem);

/* Which records audit_read() passes on; a zero field does not filter. */
typedef struct AuditFilter {
        const char *app;    /* only records of this app id */
        bool has_since;     /* only records whose time is >= since_usec */
        int64_t since_usec; /* microseconds since the Unix epoch */
} AuditFilter;

/*
 * Called with each record, in chain order: rec is the parsed object (borrowed),
 * line/line_len the exact bytes in the file (no newline, not NUL-terminated). A
 * negative return stops the walk and audit_read() returns it.
 */
typedef int (*AuditRecordFn)(const json_t *rec, const char *line, size_t line_len, void *userdata);

/*
 * Reads state_dir/audit from its first file to the end, checking the whole chain
 * and HEAD, and calls fn (may be NULL) with the records filter (may be NULL)
 * selects. A record is passed on only once the chain vouches for it (the next
 * record's prev matches it, or HEAD does), or when it is the last record and no
 * problem was found, so a changed record is never passed on as good. It does not
 * lock: writers may append meanwhile, and the records written so far are read; a
 * last line without its newline is taken for a write in progress only while a
 * writer holds the lock. report is filled in every case (zeroed first).
 * Returns 0 (chain intact); -EBADMSG with report->problem and report->message set
 * at the first problem (the records before it have been passed on); -ENOENT if
 * there is no audit log; fn's negative return; or -errno (report->problem is
 * AUDIT_PROBLEM_IO).
 */
int audit_read(const char *state_dir, const AuditFilter *filter, AuditRecordFn fn, void *userdata,
               AuditVerifyReport *report);

/* audit_read() without records: checks the whole log. Same returns. */
int audit_verify(const char *state_dir, AuditVerifyReport *report);

/*
 * Parses an RFC 3339 time ("2024-05-01T12:00:00Z", "2024-05-01T14:00:00.5+02:00",
 * fraction up to 9 digits, 't'/'z' in either case) or a date ("2024-05-01",
 * midnight UTC). Returns 0 and *ret_usec (microseconds since the Unix epoch, the
 * fraction cut to microseconds), or -EINVAL (-ERANGE before 1970 or after 9999).
 */
int audit_parse_time(const char *s, int64_t *ret_usec);

/*
 * Parses a --since value: an RFC 3339 time or date (audit_parse_time()), or a
 * relative age "N" + s, m, h, d or w ("10m", "2h", "1d") counted back from
 * now_usec. Returns 0 and *ret_usec, or -EINVAL / -ERANGE.
 */
int audit_parse_since(const char *s, int64_t now_usec, int64_t *ret_usec);

/* Formats usec (since the epoch) as "2024-05-01T12:00:00.000000Z" into buf (at least
 * 32 bytes). Returns buf, or NULL if the year is past 9999. */
char *audit_format_time(int64_t usec, char *buf, size_t size);

/*
 * Coalescing (coalesce.c; docs/audit.md, "Repeated records"). A flood of one
 * decision, e.g. an app calling as fast as its rate limit allows, wrote ~20 MB/s of
 * identical records. An AuditCoalesce, one per source (the broker keeps one per
 * app), writes the first record of a kind and counts the same record again within
 * a window; at the end of the window one AUDIT_EVENT_SUPPRESSED record gives the
 * count:
 *
 *   {..., "event":"suppressed", "why":"repeated", "of":"call", <the record's fields>,
 *    "count":N, "first":"<time>", "last":"<time>", <its extra fields>, "prev":...}
 *
 * Two records are the same when event, fields and extra fields are equal (extra
 * compared as JSON with sorted keys). Up to AUDIT_COALESCE_KEYS kinds are counted
 * side by side; a new kind past that sums up the oldest first. New kinds are
 * charged, by their estimated size in bytes, to a token bucket (budget_rate bytes
 * a second, budget_burst bytes); past it they are counted, by their first field's
 * value and their "decision", into one record per window:
 *
 *   {..., "event":"suppressed", "why":"budget", "count":N, "bytes":B, "first":...,
 *    "last":..., "ops":{"<op>":{"<decision>":n}}, "prev":...}
 *
 * The figures: a window of 1 s, as Linux's printk_ratelimit() (5 s) and audit's
 * rate limit (per second) count; a budget of 32 KiB/s (~130 distinct records a
 * second, 2.7 GB a day at most per app) with a burst of 1 MiB (~4,000 records: an
 * app's start-up). The summaries are charged too, after they are written (a
 * summary is never dropped), so a source's records and summaries together stay
 * within the budget, give or take one record. Full, the slots give way to the key
 * seen least recently. A record counted is answered before its summary is written: what the
 * log vouches for, within a window, is the first record and, by the window's end,
 * the count (a crash loses at most one window's counts).
 */
#define AUDIT_COALESCE_KEYS        8u
#define AUDIT_COALESCE_WINDOW_USEC (1000 * 1000)
#define AUDIT_BUDGET_RATE          (32u * 1024u)
#define AUDIT_BUDGET_BURST         (1024u * 1024u)

typedef struct AuditCoalesce AuditCoalesce;

typedef struct AuditCoalesceOptions {
        int64_t window_usec;   /* 0: AUDIT_COALESCE_WINDOW_USEC */
        uint64_t budget_rate;  /* bytes a second; 0: AUDIT_BUDGET_RATE */
        uint64_t budget_burst; /* bytes; 0: AUDIT_BUDGET_BURST */
} AuditCoalesceOptions;

typedef struct AuditCoalesceStats {
        uint64_t written;     /* records written through it */
        uint64_t coalesced;   /* counted as repeats of a written one */
        uint64_t over_budget; /* counted past the budget */
        uint64_t summaries;   /* "suppressed" records written */
} AuditCoalesceStats;

/* Returns 0 and *ret, or -ENOMEM / -EINVAL. options may be NULL (the defaults). */
int audit_coalesce_new(const AuditCoalesceOptions *options, AuditCoalesce **ret);

/* Frees without writing anything: call audit_coalesce_flush(..., true) first. Takes
 * NULL; returns NULL. */
AuditCoalesce *audit_coalesce_free(AuditCoalesce *co);

/*
 * Appends a record as audit_append_fields() would (same arguments, app the record's
 * app id), unless it repeats one written within the window (counted) or is over the
 * budget (counted). now_usec: wall-clock microseconds since the epoch, the times of
 * the summaries. A record whose key passes 4 KiB is never coalesced (it is still
 * charged to the budget). Returns 1 (written), 0 (counted), or audit_append_fields()'s
 * -errno (nothing counted).
 */
int audit_coalesce_append(AuditCoalesce *co, AuditLog *a, const char *app, const char *event,
                          const AuditField *fields, size_t n_fields, const json_t *extra,
                          int64_t now_usec);

/*
 * Writes the summaries whose window has ended by now_usec (all of them if all: the
 * source goes away), with app as their app. Returns 0 or audit_append_fields()'s
 * -errno (what was not written stays counted).
 */
int audit_coalesce_flush(AuditCoalesce *co, AuditLog *a, const char *app, int64_t now_usec,
                         bool all);

/* When the next summary is due (wall-clock microseconds), or INT64_MAX if none. */
int64_t audit_coalesce_due(const AuditCoalesce *co);

void audit_coalesce_stats(const AuditCoalesce *co, AuditCoalesceStats *ret);
