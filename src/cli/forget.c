/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella forget: removes an installed app from the state directory, so that its id
 * can be installed again by another folder or key (docs/security.md, "App
 * identity"): its uid and claim (state.db), its /data (apps/<id>/), its requested
 * set, grants, exports and gesture (grants.db). Refused while a running kernel has
 * the app.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "policy/grants.h"
#include "policy/manifest.h"
#include "supervisor/control.h"
#include "cli/exit-codes.h"
#include "supervisor/forget.h"
#include "supervisor/state.h"

static void forget_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella forget [OPTIONS] APP\n"
                "\n"
                "Forgets the installed app APP: its uid and the folder or key it is bound\n"
                "to, its /data, its requested rights and grants, its keys and the ipc\n"
                "queues it created are deleted (a running kernel drops the queues it\n"
                "holds). Then another folder or signing key may install the id. Other\n"
                "apps' rights that reached APP through what it exported wait again.\n"
                "The app must not be running in any cella kernel on the state directory.\n"
                "\n"
                "Options:\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 forgotten; 1 APP is not installed, or it is running (or a\n"
                "running kernel did not answer, so it may be);\n"
                "240 bad command line; 242 state directory problem.\n",
                cli_default_state_dir());
}

/* 1 if some kernel on state_dir has app, 0 if none, or an exit code (> 1). */
static int app_is_running(const char *state_dir, const char *app)
{
        json_t *apps = NULL, *mute = NULL, *e;
        size_t i;
        int code;

        code = cli_ask_kernels_all("forget", state_dir, "org.cella.Ps", NULL, "apps", "apps", &apps,
                                   &mute);
        if (code != 0)
                return code;
        if (json_array_size(mute) > 0) {
                /* it may run there: deleting a running app's data is what we refuse */
                log_error("%s: a kernel on %s did not answer (see above), so %s may be one "
                          "of its apps: nothing was forgotten; try again",
                          app, state_dir, app);
                code = 1;
        }
        json_decref(mute);
        json_array_foreach(apps, i, e)
        {
                const char *id = json_string_value(json_object_get(e, "id"));

                if (code == 0 && id && strcmp(id, app) == 0) {
                        log_error("%s is an app of the running cella kernel %" JSON_INTEGER_FORMAT
                                  ": stop it first (nothing was forgotten)",
                                  app, json_integer_value(json_object_get(e, "kernel_pid")));
                        code = 1;
                        break;
                }
        }
        json_decref(apps);
        return code;
}

/* A kernel's answer to org.cella.AppForgotten: an error is its own log's matter. */
static int forgotten_reply(pid_t pid, json_t *reply, void *ud)
{
        (void)pid;
        (void)reply;
        (void)ud;
        return 0;
}

int cli_forget(int argc, char **argv)
{
        _cleanup_(grants_freep) Grants *g = NULL;
        _cleanup_(state_freep) State *st = NULL;
        const char *state_dir, *app;
        AppForgetStep step = APP_FORGET_GRANTS;
        int r, code;

        if (!cli_parse_state_dir_only(argc, argv, forget_usage, &state_dir, &code))
                return code;
        if (argc - optind != 1) {
                log_error("forget: expected APP; see 'cella forget --help'");
                return CELLA_EXIT_USAGE;
        }
        app = argv[optind];
        if ((code = cli_app_id_arg(app)) != 0)
                return code;
        code = app_is_running(state_dir, app);
        if (code != 0)
                return code;
        r = state_open(state_dir, STATE_UID_BASE_DEFAULT, STATE_UID_COUNT_DEFAULT, &st);
        if (r >= 0 && state_created(st))
                log_info("created the state directory %s", state_dir);
        if (r == -EROFS || r == -EACCES) {
                cli_state_dir_unwritable(state_dir, r);
                return CELLA_EXIT_STATE;
        }
        if (r < 0) {
                log_error_errno(r, "cannot open the state directory %s: %m", state_dir);
                return CELLA_EXIT_STATE;
        }
        if ((code = cli_grants_open(state_dir, &g)) != 0)
                return code;
        r = app_forget(state_dir, g, st, app, &step);
        if (r < 0) {
                if (step == APP_FORGET_GRANTS)
                        log_error_errno(r, "cannot forget the grants of %s: %m", app);
                else if (step == APP_FORGET_KEYS)
                        log_error_errno(r, "cannot forget the keys of %s in %s/keystore.db: %m",
                                        app, state_dir);
                else if (step == APP_FORGET_QUEUES)
                        log_error_errno(r, "cannot forget the queues of %s in %s/ipc-queues.db: %m",
                                        app, state_dir);
                else if (step == APP_FORGET_DATA)
                        log_error_errno(r, "cannot unmount the /data of %s (%s/apps/%s/data): %m",
                                        app, state_dir, app);
                else
                        log_error_errno(r, "cannot remove %s/apps/%s: %m", state_dir, app);
                return CELLA_EXIT_STATE;
        }
        if (r == 0) {
                log_error("%s is not installed in %s; nothing to forget", app, state_dir);
                return 1;
        }
        printf("forgot %s: its data, grants, keys and queues are deleted; its id is free\n", app);
        cli_grants_changed(state_dir, app, "forgotten", NULL, false);
        /* A kernel holding ipc-queues.db (app_forget() skipped it) drops the app's
         * queues itself; one that does not know the method (older) answers an error. */
        {
                json_t *params = json_pack("{s:s}", "app", app);

                r = params ? control_each_kernel(state_dir, "org.cella.AppForgotten", params,
                                                 forgotten_reply, NULL)
                           : -ENOMEM;
                json_decref(params);
                if (r < 0 && r != -EACCES)
                        log_warning_errno(r,
                                          "cannot tell the running kernels to drop the queues "
                                          "of %s: %m",
                                          app);
        }
        /* What it exported is gone: running kernels re-read every app's grants. */
        r = control_notify_grants_changed(state_dir, NULL);
        if (r < 0 && r != -EACCES)
                log_warning_errno(r, "cannot tell the running kernels: %m");
        return 0;
}
