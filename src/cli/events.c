/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella events: what happens to the apps, as it happens (cellad's org.cella.Events
 * stream: lifecycle, permission, memory and kill events), after the ones of the
 * audit log since T with --since. One line per event, or one JSON object per line
 * with --json.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/termsafe.h"
#include "base/time-util.h"
#include "cli/cli.h"
#include "cli/color.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "policy/manifest.h"

enum {
        ARG_SINCE = CLI_ARG_OWN,
        ARG_NO_FOLLOW,
};

static void events_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella events [OPTIONS]\n"
                "\n"
                "Prints what happens to the apps of cellad as it happens: lifecycle (started,\n"
                "exited, each state change), permission (grants, refused calls,\n"
                "notifications), memory (OOM kills) and kill events. Ctrl-C to stop.\n"
                "\n"
                "Options:\n"
                "      --since T         first the events of the audit log from T on: an RFC\n"
                "                        3339 time or date, or an age (10m, 2h, 1d)\n"
                "      --no-follow       only those (with --since), then exit\n"
                "      --json            one JSON object per event and line\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Colour only on a terminal, and never with NO_COLOR set.\n"
                "\n"
                "Exit status: 0 done; 3 no cellad runs for the state directory; 240 bad\n"
                "command line; 242 not allowed.\n",
                cli_default_state_dir());
}

typedef struct Printer {
        bool json, color, follow;
} Printer;

/* "2024-05-01T12:00:00.123456Z  lifecycle  org.example.app  state foreground (was
 * background)": the fields that say what happened, app text made inert. */
static void print_event(const Printer *p, json_t *e)
{
        static const char *const skip[] = {"time",  "kind", "source", "app",
                                           "event", "seq",  "prev",   "what"};
        char when[40], app[MANIFEST_ID_MAX + 1], kind[16], what[64], buf[256];
        const char *k, *sc;
        json_t *v;

        if (p->json) {
                char *s = json_dumps(e, JSON_COMPACT);

                if (s)
                        puts(s);
                free(s);
                return;
        }
        termsafe_field(json_string_value(json_object_get(e, "time")) ?: "-", sizeof when - 4, when,
                       sizeof when);
        cli_safe_str(json_object_get(e, "app"), app, sizeof app);
        cli_safe_str(json_object_get(e, "kind"), kind, sizeof kind);
        cli_safe_str(json_object_get(e, "what") ?: json_object_get(e, "event"), what, sizeof what);
        sc = p->color && strcmp(kind, "lifecycle") != 0 ? "\033[33m" : "";
        printf("%s %s%-10s%s %s %s", when, sc, kind, sc[0] ? CLI_COLOR_RESET : "", app, what);
        json_object_foreach(e, k, v)
        {
                bool skipped = false;
                char *s;

                for (size_t i = 0; i < ELEMENTSOF(skip); i++)
                        skipped |= strcmp(k, skip[i]) == 0;
                if (skipped || json_is_null(v))
                        continue;
                s = json_is_string(v) ? strdup(json_string_value(v))
                                      : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                termsafe_field(s ?: "", sizeof buf - 4, buf, sizeof buf);
                printf(" %s=%s", k, buf);
                free(s);
        }
        putchar('\n');
}

static int on_event(json_t *params, bool continues, void *ud)
{
        const Printer *p = ud;
        json_t *e = json_object_get(params, "event");

        if (json_is_object(e))
                print_event(p, e);
        else if (json_is_true(json_object_get(params, "live")) && !p->follow)
                return -ECANCELED; /* the replay is over: --no-follow ends here */
        /* Each event on its own line as it comes: a pipe does not wait for a buffer. */
        return fflush(stdout) == 0 ? 0 : -EPIPE;
}

int cli_events(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, CLI_ARG_STATE_DIR},
                {"json", no_argument, NULL, CLI_ARG_JSON},
                {"since", required_argument, NULL, ARG_SINCE},
                {"no-follow", no_argument, NULL, ARG_NO_FOLLOW},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir(), *since = NULL;
        Printer p = {.color = cli_color(STDOUT_FILENO)};
        bool follow = true;
        int64_t usec;
        json_t *params;
        int c, code;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_SINCE:
                        if (audit_parse_since(optarg, now_realtime_us(), &usec) < 0) {
                                log_error("events: --since: expected an RFC 3339 time or date, "
                                          "or an age such as 10m, 2h, 1d, not '%s'",
                                          optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        since = optarg;
                        break;
                case ARG_NO_FOLLOW:
                        follow = false;
                        break;
                default:
                        if ((code = cli_common_option(c, optarg, &state_dir, &p.json,
                                                      events_usage)) >= 0)
                                return code;
                        break;
                }
        }
        if (optind != argc) {
                log_error("events: takes no arguments; see 'cella events --help'");
                return CELLA_EXIT_USAGE;
        }
        if (!follow && !since) {
                log_error("events: --no-follow prints the events of --since T; give it one");
                return CELLA_EXIT_USAGE;
        }
        params = since ? json_pack("{s:s}", "since", since) : json_object();
        /* Without following, the replay still streams (more), and ends at the reply
         * that says the stream is live. */
        p.follow = follow;
        return cli_daemon_call("events", state_dir, "org.cella.Events", params, true, p.json,
                               on_event, &p);
}
