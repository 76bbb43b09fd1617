/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella stop: stops a running app, whichever kernel (cella run, cella boot) runs it,
 * and waits until it has stopped, as `podman stop` does. The kernel does the work
 * (org.cella.Stop on its control socket, docs/api.md): SIGTERM
 * to the app's sandbox, SIGKILL once SUPERVISOR_STOP_GRACE_MS have passed. This
 * command asks every kernel for its apps (org.cella.Ps) until the app no longer runs.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/termsafe.h"
#include "base/time-util.h"
#include "cli/cli.h"
#include "supervisor/control.h"
#include "cli/exit-codes.h"
#include "supervisor/supervisor.h"

/* How long `cella stop` waits for the app to be gone: the kernel's grace period, then
 * time for the SIGKILL and the kernel's bookkeeping. */
#define STOP_WAIT_MS (SUPERVISOR_STOP_GRACE_MS + 5000)
/* How often it asks the kernels whether the app still runs. */
#define STOP_POLL_MS 50

static void stop_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella stop [OPTIONS] APP...\n"
                "\n"
                "Stops each running app APP (an app id), in whichever cella kernel runs it on\n"
                "the state directory: SIGTERM, then SIGKILL if it has not exited %d s later.\n"
                "Waits until it has stopped. A packed Lua app stops its whole group's host.\n"
                "\n"
                "Options:\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 every APP stopped; 1 an APP is not running (or did not stop,\n"
                "or a kernel did not answer within %u s, named on stderr);\n"
                "240 bad command line; 242 the state directory's run/ cannot be read (cella\n"
                "stop needs root).\n",
                SUPERVISOR_STOP_GRACE_MS / 1000, cli_default_state_dir(),
                CONTROL_CLIENT_TIMEOUT_MS / 1000);
}

/* The state ("running", "exited", ...) of app in the kernels' records apps, or NULL
 * when no kernel lists it. A running instance wins over a stopped one (two kernels
 * may both know an id). */
static const char *app_state(json_t *apps, const char *app)
{
        const char *found = NULL;
        json_t *a;
        size_t i;

        json_array_foreach(apps, i, a)
        {
                const char *id = json_string_value(json_object_get(a, "id"));
                const char *st = json_string_value(json_object_get(a, "state"));

                if (!id || strcmp(id, app) != 0)
                        continue;
                if (!st)
                        st = "unknown";
                if (!found || strcmp(st, "running") == 0 || strcmp(st, "restarting") == 0)
                        found = st;
        }
        return found;
}

static bool is_active(const char *state)
{
        return state && (strcmp(state, "running") == 0 || strcmp(state, "restarting") == 0);
}

/* Asks every kernel for its apps: 0 and *ret, with *ret_incomplete true when a live
 * kernel did not answer (warned about: it may have the app), or an exit code after a
 * message. */
static int list_apps(const char *state_dir, json_t **ret, bool *ret_incomplete)
{
        json_t *mute = NULL;
        int code = cli_ask_kernels_all("stop", state_dir, "org.cella.Ps", NULL, "apps", "apps", ret,
                                       &mute);

        *ret_incomplete = json_array_size(mute) > 0;
        json_decref(mute);
        return code;
}

typedef struct StopAsk {
        unsigned ok;    /* kernels that took the request */
        unsigned mute;  /* live kernels that did not answer it */
        int error;      /* the first error other than "no such app" (positive errno) */
        char what[128]; /* its message */
} StopAsk;

static int on_stop_reply(pid_t pid, json_t *reply, void *ud)
{
        StopAsk *a = ud;
        const char *e = control_reply_error_name(reply);
        char safe[96];

        if (!e) {
                a->ok++;
                return 0;
        }
        if (strcmp(e, CONTROL_ERROR_NO_SUCH_APP) == 0) /* another kernel's app */
                return 0;
        if (!a->error) {
                a->error = EIO;
                termsafe_field(control_reply_message(reply), 80, safe, sizeof safe);
                snprintf(a->what, sizeof a->what, "kernel %d: %s", (int)pid, safe);
        }
        return 0;
}

static void on_stop_mute(pid_t pid, int error, void *ud)
{
        StopAsk *a = ud;

        a->mute++;
        log_warning_errno(error, "stop: kernel %d did not answer the stop request: %m", (int)pid);
}

/* Stops app: returns 0 (stopped), 1 (not running, or still running after
 * STOP_WAIT_MS), or an exit code; prints what happened. */
static int stop_one(const char *state_dir, const char *app)
{
        json_t *apps = NULL, *req;
        const char *st;
        StopAsk ask = {};
        int64_t deadline;
        bool incomplete;
        int code, r;

        if ((code = list_apps(state_dir, &apps, &incomplete)) != 0)
                return code;
        st = app_state(apps, app);
        if (!st && incomplete) {
                log_error("stop: %s is not on the kernels that answered, and a kernel on %s "
                          "did not answer (see above): try again",
                          app, state_dir);
                json_decref(apps);
                return 1;
        }
        if (!st) {
                log_error("stop: %s is not running: no cella kernel on %s has it (see 'cella ps')",
                          app, state_dir);
                json_decref(apps);
                return 1;
        }
        if (!is_active(st)) {
                char safe[32];

                log_error("stop: %s is not running (it is %s; see 'cella ps')", app,
                          termsafe_token(st, safe, sizeof safe));
                json_decref(apps);
                return 1;
        }
        json_decref(apps);

        req = json_pack("{s:s}", "app", app);
        if (!req)
                return CELLA_EXIT_INTERNAL;
        r = control_ask_kernels(state_dir, "org.cella.Stop", req, CONTROL_CLIENT_TIMEOUT_MS,
                                on_stop_reply, on_stop_mute, &ask);
        json_decref(req);
        if (r < 0) {
                log_error_errno(r, "stop: cannot ask the kernels in %s/" CONTROL_DIR ": %m",
                                state_dir);
                return CELLA_EXIT_STATE;
        }
        if (ask.ok == 0) {
                if (ask.error)
                        log_error("stop: %s: %s", app, ask.what);
                else if (ask.mute)
                        log_error("stop: %s: its kernel did not answer; it may still stop it "
                                  "(see 'cella ps')",
                                  app);
                else
                        log_error("stop: %s is not running any more", app);
                return 1;
        }

        deadline = (int64_t)now_monotonic_ms() + STOP_WAIT_MS;
        for (;;) {
                if ((code = list_apps(state_dir, &apps, &incomplete)) != 0)
                        return code;
                st = app_state(apps, app);
                /* not listed because its kernel did not answer is not stopped */
                if (!is_active(st) && (st || !incomplete)) {
                        json_decref(apps);
                        printf("stopped %s\n", app);
                        return 0;
                }
                json_decref(apps);
                if ((int64_t)now_monotonic_ms() >= deadline) {
                        log_error("stop: %s is still running %d s after it was asked to stop", app,
                                  STOP_WAIT_MS / 1000);
                        return 1;
                }
                nanosleep(&(struct timespec){.tv_nsec = STOP_POLL_MS * 1000000L}, NULL);
        }
}

int cli_stop(int argc, char **argv)
{
        const char *state_dir;
        int code, worst = 0;

        if (!cli_parse_state_dir_only(argc, argv, stop_usage, &state_dir, &code))
                return code;
        if (optind >= argc) {
                log_error("stop: expected APP; see 'cella stop --help'");
                return CELLA_EXIT_USAGE;
        }
        for (int i = optind; i < argc; i++)
                if ((code = cli_app_id_arg(argv[i])) != 0)
                        return code;
        for (int i = optind; i < argc; i++) {
                code = stop_one(state_dir, argv[i]);
                if (code != 0 && (worst == 0 || worst == 1))
                        worst = code;
                if (fflush(stdout) != 0 && worst == 0)
                        worst = CELLA_EXIT_INTERNAL;
        }
        return worst;
}
