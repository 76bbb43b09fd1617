/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella install: puts an app into cellad's store (docs/store.md). The CLI opens DIR
 * or BUNDLE itself and passes cellad a sealed memfd of the bundle with the request
 * (SCM_RIGHTS): cellad never opens a path a client names. Also what update.c,
 * remove.c and list.c share: the printing of cellad's replies.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/termsafe.h"
#include "cli/cli.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "supervisor/control.h"

enum {
        ARG_ID = CLI_ARG_OWN,
};

static void install_usage(FILE *f, bool update)
{
        if (update)
                fprintf(f,
                        "Usage: cella update [--state-dir DIR] [--json] [--id ID] APP_DIR|BUNDLE\n"
                        "\n"
                        "Replaces the installed app with the one in APP_DIR or the bundle file\n"
                        "BUNDLE, only if its version is newer (Debian's ordering: 1.10 > 1.9,\n"
                        "1.0~rc1 < 1.0) and it is signed by the same key as the installed one.\n"
                        "An unsigned app can be updated only by an unsigned one, a signed one\n"
                        "only by the same key. The running app keeps its files until it starts\n"
                        "again. --id ID: the bundle must be the app ID (docs/store.md).\n");
        else
                fprintf(f, "Usage: cella install [--state-dir DIR] [--json] APP_DIR|BUNDLE\n"
                           "\n"
                           "Installs the app in APP_DIR or the bundle file BUNDLE ('cella "
                           "bundle')\n"
                           "into cellad's store (<state-dir>/apps/<id>/<version>, read-only), "
                           "after\n"
                           "checking every file, the manifest, the rights it requests and its\n"
                           "signature (docs/store.md). 'cella update' replaces it later.\n");
        fprintf(f,
                "\n"
                "Options:\n"
                "      --state-dir DIR   state directory of the cellad (default %s)\n"
                "%s"
                "      --json            print the installed app as one JSON object (an error\n"
                "                        as {\"error\": NAME, \"parameters\": {...}})\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 %s; 1 refused (the error names the file or the manifest key\n"
                "at fault); 3 no cellad runs; 240 bad command line.\n",
                cli_default_state_dir(),
                update ? "      --id ID           the bundle must be the installed app ID\n" : "",
                update ? "updated" : "installed");
}

static void install_only_usage(FILE *f)
{
        install_usage(f, false);
}

static void update_usage(FILE *f)
{
        install_usage(f, true);
}

int cli_install_or_update(int argc, char **argv, bool update)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, CLI_ARG_STATE_DIR},
                {"json", no_argument, NULL, CLI_ARG_JSON},
                {"id", required_argument, NULL, ARG_ID},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir(), *source, *id = NULL;
        const char *what = update ? "cannot update to" : "cannot install";
        const char *cmd = update ? "update" : "install";
        _cleanup_close_ int fd = -EBADF;
        json_t *reply = NULL, *params, *p;
        bool json = false;
        int c, code;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_ID:
                        if (!update) {
                                install_usage(stderr, update);
                                return CELLA_EXIT_USAGE;
                        }
                        if ((code = cli_app_id_arg(optarg)) != 0)
                                return code;
                        id = optarg;
                        break;
                default:
                        if ((code = cli_common_option(
                                     c, optarg, &state_dir, &json,
                                     (update ? update_usage : install_only_usage))) >= 0)
                                return code;
                        break;
                }
        }
        if (argc - optind != 1) {
                log_error("%s: expected APP_DIR or BUNDLE; see 'cella %s --help'", cmd, cmd);
                return CELLA_EXIT_USAGE;
        }
        source = argv[optind];
        /* Is anyone there, before bundling what may be a large folder for nobody? */
        code = cli_cellad_call(cmd, state_dir, "org.cella.Ping", NULL, NULL, 0, 10000, &reply);
        json_decref(reply);
        reply = NULL;
        if (code != 0)
                return code;
        code = cli_bundle_fd(source, &fd, NULL, json ? &reply : NULL);
        if (code != 0) {
                if (reply)
                        (void)cli_print_json(reply);
                json_decref(reply);
                return code;
        }
        params = id ? json_pack("{s:s}", "id", id) : json_object();
        code = cli_cellad_call(cmd, state_dir, update ? "org.cella.Update" : "org.cella.Install",
                               params, &fd, 1, 0, &reply);
        if (code != 0)
                return code;
        if (cli_reply_error(what, source, reply, json)) {
                code = cli_reply_exit_code(reply);
                json_decref(reply);
                return code;
        }
        p = control_reply_parameters(reply);
        if (json)
                code = cli_print_json(p);
        else {
                char sid[256], ver[256], prev[256], key[64];
                const char *k = json_string_value(json_object_get(p, "key_id"));

                cli_safe_field(json_object_get(p, "id"), sid, sizeof sid);
                cli_safe_field(json_object_get(p, "version"), ver, sizeof ver);
                cli_safe_field(json_object_get(p, "previous"), prev, sizeof prev);
                cli_safe_field(json_object_get(p, "key_id"), key, sizeof key);
                if (update)
                        printf("updated %s from %s to %s (%s%s)%s\n", sid, prev, ver,
                               k ? "signed by key " : "unsigned", key,
                               json_is_true(json_object_get(p, "restarted"))
                                       ? "; it was running: restarted into the new version"
                                       : "");
                else
                        printf("installed %s %s (%s%s)\n", sid, ver,
                               k ? "signed by key " : "unsigned", key);
                if (!k)
                        log_info("note: %s is unsigned: only an unsigned version can update it "
                                 "(sign it with 'cella sign --key' to bind its updates to a key)",
                                 sid);
        }
        json_decref(reply);
        return code;
}

int cli_install(int argc, char **argv)
{
        return cli_install_or_update(argc, argv, false);
}
