/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cella audit: lists and checks the audit log (src/audit/audit.h, docs/audit.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/time-util.h"
#include "cli/cli.h"
#include "cli/exit-codes.h"

/* Exit status when the log is broken: not one of 240-254, which say cella itself
 * failed; the check worked and found a problem, as `cmp` or `diff` return 1. */
#define AUDIT_EXIT_BROKEN 1

enum {
        ARG_STATE_DIR = 0x100,
        ARG_APP,
        ARG_SINCE,
        ARG_VERIFY,
        ARG_JSON,
};

static void audit_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella audit [OPTIONS]\n"
                "\n"
                "Prints the audit log's records, oldest first, checking the hash chain as it\n"
                "reads; or, with --verify, checks the whole log and says whether it is intact.\n"
                "\n"
                "Options:\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "      --app ID          only records of app ID\n"
                "      --since T         only records from T on: an RFC 3339 time\n"
                "                        (2024-05-01T12:00:00Z), a date (2024-05-01, UTC) or an\n"
                "                        age (30s, 10m, 2h, 1d, 1w)\n"
                "      --verify          check the chain and HEAD; print a verdict, no records\n"
                "      --json            records as JSON lines, exactly as stored; with\n"
                "                        --verify, the verdict as one JSON object\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 the log is intact; 1 it is not (the first problem is printed);\n"
                "240 bad command line; 242 no audit log or it cannot be read; 254 other errors.\n",
                cli_default_state_dir());
}

/* A string printed as it is when it holds nothing a reader could misread (spaces,
 * quotes, control or non-ASCII bytes); otherwise JSON-quoted, \u-escaped to ASCII,
 * so a record cannot move the cursor or fake a line of its own. */
static bool is_plain(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s <= ' ' || *s >= 0x7f || *s == '"' || *s == '\\')
                        return false;
        return true;
}

static void print_value(const json_t *v)
{
        _cleanup_free_ char *s = NULL;

        if (json_is_string(v) && is_plain(json_string_value(v))) {
                fputs(json_string_value(v), stdout);
                return;
        }
        s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
        fputs(s ?: "?", stdout);
}

static void print_name(const char *s)
{
        json_t *j;

        if (is_plain(s)) {
                fputs(s, stdout);
                return;
        }
        j = json_string(s);
        print_value(j);
        json_decref(j);
}

typedef struct PrintContext {
        bool json;
} PrintContext;

static int print_record(const json_t *rec, const char *line, size_t line_len, void *userdata)
{
        PrintContext *c = userdata;
        const json_t *app = json_object_get(rec, "app");
        const char *key;
        json_t *value;

        if (c->json) {
                fwrite(line, 1, line_len, stdout);
                putchar('\n');
        } else {
                printf("#%" PRId64 " %s ", (int64_t)json_integer_value(json_object_get(rec, "seq")),
                       json_string_value(json_object_get(rec, "time")));
                if (json_is_string(app))
                        print_name(json_string_value(app));
                else
                        putchar('-');
                putchar(' ');
                print_name(json_string_value(json_object_get(rec, "event")));
                json_object_foreach((json_t *)rec, key, value)
                {
                        if (strcmp(key, "seq") == 0 || strcmp(key, "time") == 0 ||
                            strcmp(key, "app") == 0 || strcmp(key, "event") == 0 ||
                            strcmp(key, "prev") == 0)
                                continue;
                        putchar(' ');
                        print_name(key);
                        putchar('=');
                        print_value(value);
                }
                putchar('\n');
        }
        return ferror(stdout) ? -EIO : 0;
}

static int exit_for_error(int r, const AuditVerifyReport *rep, const char *state_dir)
{
        if (r == -ENOENT) {
                log_error("no audit log in %s/audit (nothing has been recorded there yet)",
                          state_dir);
                return CELLA_EXIT_STATE;
        }
        if (rep->problem == AUDIT_PROBLEM_IO) {
                log_error("cannot read the audit log in %s/audit: %s", state_dir, rep->message);
                return CELLA_EXIT_STATE;
        }
        log_error_errno(r, "reading the audit log in %s/audit failed: %m", state_dir);
        return CELLA_EXIT_INTERNAL;
}

static int verify_json(int r, const AuditVerifyReport *rep)
{
        char hex[2 * AUDIT_HASH_SIZE + 1];
        json_auto_t *o = NULL;

        for (size_t i = 0; i < AUDIT_HASH_SIZE; i++)
                snprintf(hex + 2 * i, 3, "%02x", rep->head_hash[i]);
        o = json_pack("{s:b, s:I, s:I, s:I, s:I, s:s, s:i, s:b, s:b}", "ok", r == 0, "records",
                      (json_int_t)rep->records, "first_seq", (json_int_t)rep->first_seq, "last_seq",
                      (json_int_t)rep->last_seq, "head_seq", (json_int_t)rep->head_seq, "head_hash",
                      hex, "files", (int)rep->files, "writer_active", rep->writer_active,
                      "starts_with_break", rep->starts_with_break);
        if (!o)
                return -ENOMEM;
        if (r < 0 && (json_object_set_new(o, "problem",
                                          json_string(audit_problem_to_string(rep->problem))) < 0 ||
                      json_object_set_new(o, "file", json_string(rep->file)) < 0 ||
                      json_object_set_new(o, "line", json_integer((json_int_t)rep->line)) < 0 ||
                      json_object_set_new(o, "seq", json_integer((json_int_t)rep->seq)) < 0 ||
                      json_object_set_new(o, "after_head", json_boolean(rep->after_head)) < 0 ||
                      json_object_set_new(o, "message", json_string(rep->message)) < 0))
                return -ENOMEM;
        if (json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0)
                return -EIO;
        putchar('\n');
        return 0;
}

static void verify_text(int r, const AuditVerifyReport *rep)
{
        if (r < 0) {
                printf("audit log BROKEN: %s\n", rep->message);
                if (rep->after_head)
                        printf("(the problem lies after the last sync point HEAD names: what a "
                               "crash in the middle of a write leaves, or a change since)\n");
                return;
        }
        printf("audit log OK: %" PRIu64 " record%s, chain intact", rep->records,
               rep->records == 1 ? "" : "s");
        if (rep->starts_with_break)
                printf("; it starts at record %" PRIu64 " with an audit.break: the log before "
                       "it was found broken and set aside",
                       rep->first_seq);
        putchar('\n');
}

int cli_audit(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"app", required_argument, NULL, ARG_APP},
                {"since", required_argument, NULL, ARG_SINCE},
                {"verify", no_argument, NULL, ARG_VERIFY},
                {"json", no_argument, NULL, ARG_JSON},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir();
        AuditFilter filter = {};
        AuditVerifyReport rep;
        PrintContext ctx = {};
        bool verify = false;
        int c, r, code;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_STATE_DIR:
                        if ((code = cli_state_dir_arg(optarg, &state_dir)) != 0)
                                return code;
                        break;
                case ARG_APP:
                        if (!*optarg) {
                                log_error("--app: expected an app id");
                                return CELLA_EXIT_USAGE;
                        }
                        filter.app = optarg;
                        break;
                case ARG_SINCE:
                        if (audit_parse_since(optarg, now_realtime_us(), &filter.since_usec) < 0) {
                                log_error("--since: expected an RFC 3339 time "
                                          "(2024-05-01T12:00:00Z), a date (2024-05-01) or an "
                                          "age such as 10m, 2h or 1d; got '%s'",
                                          optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        filter.has_since = true;
                        break;
                case ARG_VERIFY:
                        verify = true;
                        break;
                case ARG_JSON:
                        ctx.json = true;
                        break;
                case 'h':
                        audit_usage(stdout);
                        return 0;
                default:
                        audit_usage(stderr);
                        return CELLA_EXIT_USAGE;
                }
        }
        if (optind < argc) {
                log_error("audit: unexpected argument '%s'; see 'cella audit --help'",
                          argv[optind]);
                return CELLA_EXIT_USAGE;
        }
        if (verify && (filter.app || filter.has_since)) {
                log_error("--verify checks the whole log: it takes no --app or --since");
                return CELLA_EXIT_USAGE;
        }

        if (verify) {
                r = audit_verify(state_dir, &rep);
                if (r < 0 && r != -EBADMSG)
                        return exit_for_error(r, &rep, state_dir);
                if (ctx.json) {
                        int k = verify_json(r, &rep);

                        if (k < 0)
                                return exit_for_error(k, &rep, state_dir);
                } else
                        verify_text(r, &rep);
                if (fflush(stdout) != 0)
                        return CELLA_EXIT_INTERNAL;
                return r < 0 ? AUDIT_EXIT_BROKEN : 0;
        }

        r = audit_read(state_dir, &filter, print_record, &ctx, &rep);
        if (fflush(stdout) != 0 && r >= 0)
                r = -EIO;
        if (r == -EBADMSG) {
                log_error("audit log BROKEN: %s", rep.message);
                log_error("the records before the problem were printed; none after it");
                return AUDIT_EXIT_BROKEN;
        }
        if (r < 0)
                return exit_for_error(r, &rep, state_dir);
        return 0;
}
