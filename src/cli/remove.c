/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella remove ID [--keep-data]: takes an app out of cellad's store and, unless
 * --keep-data, forgets its data, grants and uid as cella forget does
 * (org.cella.Remove, docs/store.md "Remove"). cella clear-data ID: empties an
 * installed app's /data (org.cella.ClearData). Both refuse an app cellad runs.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "supervisor/control.h"

enum {
        ARG_KEEP_DATA = CLI_ARG_OWN,
};

static void remove_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella remove [--state-dir DIR] [--json] [--keep-data] ID\n"
                "\n"
                "Removes the installed app ID from cellad's store: every version of it.\n"
                "Without --keep-data its /data, grants and uid go too, as with 'cella\n"
                "forget'; with it they stay for a later install of the same app, which\n"
                "must have the same signer (an update's rule).\n"
                "An app cellad runs is refused: stop it first ('cella stop ID').\n"
                "\n"
                "Options:\n"
                "      --state-dir DIR   state directory of the cellad (default %s)\n"
                "      --keep-data       keep the app's /data, grants and uid\n"
                "      --json            print the result as one JSON object\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 removed; 1 not installed or running; 3 no cellad runs;\n"
                "240 bad command line.\n",
                cli_default_state_dir());
}

static void clear_data_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella clear-data [--state-dir DIR] [--json] ID\n"
                "\n"
                "Empties the /data of the installed app ID (its files and database), as\n"
                "Android's 'clear storage': the app stays installed with its grants, and\n"
                "its next start gets a new, empty /data. An app cellad runs is refused.\n"
                "\n"
                "Options:\n"
                "      --state-dir DIR   state directory of the cellad (default %s)\n"
                "      --json            print the result as one JSON object\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 cleared; 1 not installed or running; 3 no cellad runs;\n"
                "240 bad command line.\n",
                cli_default_state_dir());
}

static int run(int argc, char **argv, bool remove)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, CLI_ARG_STATE_DIR},
                {"json", no_argument, NULL, CLI_ARG_JSON},
                {"keep-data", no_argument, NULL, ARG_KEEP_DATA},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        void (*usage)(FILE * f) = remove ? remove_usage : clear_data_usage;
        const char *state_dir = cli_default_state_dir(), *id;
        bool json = false, keep = false;
        json_t *reply = NULL, *p;
        int c, code;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_KEEP_DATA:
                        if (!remove) {
                                usage(stderr);
                                return CELLA_EXIT_USAGE;
                        }
                        keep = true;
                        break;
                default:
                        if ((code = cli_common_option(c, optarg, &state_dir, &json, usage)) >= 0)
                                return code;
                        break;
                }
        }
        if (argc - optind != 1) {
                log_error("%s: expected ID; see 'cella %s --help'", argv[0], argv[0]);
                return CELLA_EXIT_USAGE;
        }
        id = argv[optind];
        if ((code = cli_app_id_arg(id)) != 0)
                return code;
        code = cli_cellad_call(argv[0], state_dir,
                               remove ? "org.cella.Remove" : "org.cella.ClearData",
                               remove ? json_pack("{s:s, s:b}", "id", id, "keep_data", keep)
                                      : json_pack("{s:s}", "id", id),
                               NULL, 0, 0, &reply);
        if (code != 0)
                return code;
        if (cli_reply_error(remove ? "cannot remove" : "cannot clear the data of", id, reply,
                            json)) {
                code = cli_reply_exit_code(reply);
                json_decref(reply);
                return code;
        }
        p = control_reply_parameters(reply);
        if (json)
                code = cli_print_json(p);
        else if (remove)
                printf("removed %s%s\n", id,
                       keep ? "; its data, grants and uid are kept"
                            : "; its data, grants and uid are deleted");
        else
                printf("cleared the data of %s\n", id);
        json_decref(reply);
        return code;
}

int cli_remove(int argc, char **argv)
{
        return run(argc, argv, true);
}

int cli_clear_data(int argc, char **argv)
{
        return run(argc, argv, false);
}
