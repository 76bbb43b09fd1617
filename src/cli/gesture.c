/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella gesture: records that the user just acted in an app (a click, a key), which
 * camera and microphone calls need within GRANTS_GESTURE_WINDOW_MS
 * (docs/capabilities.md). Meant for the shell or desktop that sees the input.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "policy/grants.h"
#include "policy/manifest.h"
#include "cli/exit-codes.h"

static void gesture_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella gesture [OPTIONS] APP\n"
                "\n"
                "Records a user gesture for APP now. Camera and microphone calls are allowed\n"
                "only within %d ms of the app's last gesture.\n"
                "\n"
                "Options:\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 recorded; 1 APP is not installed; 240 bad command line;\n"
                "242 state directory problem.\n",
                GRANTS_GESTURE_WINDOW_MS, cli_default_state_dir());
}

int cli_gesture(int argc, char **argv)
{
        const char *state_dir, *app;
        _cleanup_(grants_freep) Grants *g = NULL;
        int r, code;

        if (!cli_parse_state_dir_only(argc, argv, gesture_usage, &state_dir, &code))
                return code;
        if (argc - optind != 1) {
                log_error("gesture: expected APP; see 'cella gesture --help'");
                return CELLA_EXIT_USAGE;
        }
        app = argv[optind];
        if ((code = cli_app_id_arg(app)) != 0)
                return code;
        if ((code = cli_grants_open(state_dir, &g)) != 0)
                return code;
        /* A gesture for an app cella does not know is a typo: say so, record nothing. */
        r = grants_requested(g, app, NULL, NULL);
        if (r == -ENOENT) {
                log_error("%s is not installed in %s: no gesture recorded (an app is "
                          "installed when it first runs, or by 'cella grant --app-dir')",
                          app, state_dir);
                return 1;
        }
        if (r < 0) {
                log_error_errno(r, "cannot read %s/" GRANTS_DB_FILE ": %m", state_dir);
                return CELLA_EXIT_STATE;
        }
        r = grants_gesture_record(g, app, grants_now_ms());
        if (r < 0) {
                log_error_errno(r, "cannot record a gesture for %s: %m", app);
                return CELLA_EXIT_STATE;
        }
        cli_grants_changed(state_dir, app, "gesture", NULL, false);
        return 0;
}
