/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * audit-append: appends records to an audit log through the library, for the
 * integration tests of `cella audit`: records of any event and time, which no
 * kernel writes on demand.
 *
 *   audit-append [--file-max BYTES] [--flush-every N] STATE_DIR RECORD...
 *
 * Each RECORD is a JSON object: "event" (required), "app" (optional; absent or
 * null: a supervisor record), "time" (optional RFC 3339: the record's time instead
 * of now), and any other keys as the record's fields. The records are written as
 * one batch at the end (audit_sync()), or with --flush-every N by audit_flush()
 * after every N records (1..1000000), which lets several of these processes
 * interleave their records in one log. Exit 0, or 1 with a message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "base/size.h"

static int64_t record_time;

static int64_t clock_fn(void *userdata)
{
        struct timespec ts;

        if (record_time)
                return record_time;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
        AuditOptions o = {.clock = clock_fn};
        AuditLog *a = NULL;
        unsigned long flush_every = 0, n = 0;
        int i = 1, r, rc = 0;

        while (argc - i > 1 && argv[i][0] == '-') {
                char *end = NULL;

                if (strcmp(argv[i], "--file-max") == 0) {
                        if (parse_size(argv[i + 1], &o.file_max) < 0) {
                                fprintf(stderr, "audit-append: bad --file-max '%s'\n", argv[i + 1]);
                                return 1;
                        }
                } else if (strcmp(argv[i], "--flush-every") == 0) {
                        errno = 0;
                        flush_every = strtoul(argv[i + 1], &end, 10);
                        if (errno || end == argv[i + 1] || *end || flush_every < 1 ||
                            flush_every > 1000000) {
                                fprintf(stderr, "audit-append: bad --flush-every '%s'\n",
                                        argv[i + 1]);
                                return 1;
                        }
                } else
                        break;
                i += 2;
        }
        /* An option we do not know is a mistake, not a directory to create. */
        if (argc - i < 1 || argv[i][0] == '-') {
                fprintf(stderr, "usage: audit-append [--file-max BYTES] [--flush-every N] "
                                "STATE_DIR RECORD...\n");
                return 1;
        }
        r = audit_open(argv[i], &o, &a);
        if (r < 0) {
                fprintf(stderr, "audit-append: audit_open(%s): %s\n", argv[i], strerror(-r));
                return 1;
        }
        for (i++; i < argc; i++) {
                json_error_t err;
                json_t *rec = json_loads(argv[i], JSON_REJECT_DUPLICATES, &err);
                json_t *app, *event, *t;
                char *app_s = NULL, *event_s = NULL;

                if (!json_is_object(rec)) {
                        fprintf(stderr, "audit-append: not a JSON object: %s\n", argv[i]);
                        json_decref(rec);
                        rc = 1;
                        break;
                }
                app = json_object_get(rec, "app");
                event = json_object_get(rec, "event");
                t = json_object_get(rec, "time");
                record_time = 0;
                if (t && (!json_is_string(t) ||
                          audit_parse_time(json_string_value(t), &record_time) < 0)) {
                        fprintf(stderr, "audit-append: bad time in %s\n", argv[i]);
                        json_decref(rec);
                        rc = 1;
                        break;
                }
                if (json_is_string(app))
                        app_s = strdup(json_string_value(app));
                if (json_is_string(event))
                        event_s = strdup(json_string_value(event));
                json_object_del(rec, "app");
                json_object_del(rec, "event");
                json_object_del(rec, "time");
                r = audit_append(a, app_s, event_s, rec);
                free(app_s);
                free(event_s);
                json_decref(rec);
                if (r < 0) {
                        fprintf(stderr, "audit-append: record %s: %s\n", argv[i], strerror(-r));
                        rc = 1;
                        break;
                }
                if (flush_every && ++n % flush_every == 0) {
                        r = audit_flush(a);
                        if (r < 0) {
                                fprintf(stderr, "audit-append: audit_flush: %s\n", strerror(-r));
                                rc = 1;
                                break;
                        }
                }
        }
        r = audit_sync(a);
        audit_close(a);
        if (r < 0) {
                fprintf(stderr, "audit-append: audit_sync: %s\n", strerror(-r));
                rc = 1;
        }
        return rc;
}
