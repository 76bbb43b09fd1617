/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella list: the apps installed in cellad's store (org.cella.List, docs/store.md),
 * one line each, or with --json the reply's array of records.
 */
#include <getopt.h>
#include <stdio.h>
#include <time.h>

#include "base/log.h"
#include "cli/cli.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "supervisor/control.h"

/* The list's reply timeout: a read of the store's records, far below it. */
#define LIST_TIMEOUT_MS 10000u

static void list_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella list [--state-dir DIR] [--json]\n"
                "\n"
                "Lists the apps installed in cellad's store: id, version, who signed it\n"
                "(the key id, or 'unsigned'), when it was installed, and whether cellad\n"
                "starts it by itself ('autostart').\n"
                "\n"
                "Options:\n"
                "      --state-dir DIR   state directory of the cellad (default %s)\n"
                "      --json            one JSON array of records: id, version, dir, signed,\n"
                "                        key_id, public_key, previous, installed_at_ms,\n"
                "                        autostart, files, bytes (docs/api.md)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 listed; 1 refused; 3 no cellad runs; 240 bad command line.\n",
                cli_default_state_dir());
}

int cli_list(int argc, char **argv)
{
        const char *state_dir;
        json_t *reply = NULL, *apps, *a;
        bool json = false;
        size_t i;
        int code;

        if (!cli_parse_common_options(argc, argv, list_usage, &state_dir, &json, &code))
                return code;
        if (optind != argc) {
                log_error("list: expected no operand; see 'cella list --help'");
                return CELLA_EXIT_USAGE;
        }
        code = cli_cellad_call("list", state_dir, "org.cella.List", NULL, NULL, 0, LIST_TIMEOUT_MS,
                               &reply);
        if (code != 0)
                return code;
        if (cli_reply_error("cannot list the apps of", state_dir, reply, json)) {
                code = cli_reply_exit_code(reply);
                json_decref(reply);
                return code;
        }
        apps = json_object_get(control_reply_parameters(reply), "apps");
        if (json) {
                json_t *none = json_is_array(apps) ? NULL : json_array();

                code = cli_print_json(none ?: apps);
                json_decref(none);
                json_decref(reply);
                return code;
        }
        printf("%-40s %-16s %-18s %-20s %s\n", "ID", "VERSION", "SIGNED BY", "INSTALLED",
               "AUTOSTART");
        json_array_foreach(apps, i, a)
        {
                char id[160], ver[160], key[64], when[32] = "-";
                json_int_t ms = json_integer_value(json_object_get(a, "installed_at_ms"));
                time_t t = (time_t)(ms / 1000);
                struct tm tm;

                if (ms > 0 && gmtime_r(&t, &tm))
                        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
                cli_safe_field(json_object_get(a, "id"), id, sizeof id);
                cli_safe_field(json_object_get(a, "version"), ver, sizeof ver);
                cli_safe_field(json_object_get(a, "key_id"), key, sizeof key);
                printf("%-40s %-16s %-18s %-20s %s\n", id, ver, key[0] ? key : "unsigned", when,
                       json_is_true(json_object_get(a, "autostart")) ? "yes" : "no");
        }
        json_decref(reply);
        return 0;
}
