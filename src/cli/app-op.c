/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The commands that act on one installed app through cellad (docs/cli.md, "cella
 * start" and after; docs/api.md "Apps"): start, restart, freeze, thaw, kill,
 * foreground, background, inspect. Each is one method call; they share their option
 * parsing and their output here, each with its own help text.
 *
 * Output: "APP: STATE (pid N)" on success, or with --json the reply's parameters as
 * one JSON object; an error is one line on stderr (with --json, the error reply on
 * stdout). Exit status: 0 done; 1 refused or failed (no such app, the wrong state,
 * the op failed); 3 no cellad runs; 240 bad command line; 242 not allowed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/termsafe.h"
#include "cli/cli.h"
#include "cli/color.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "policy/manifest.h"
#include "supervisor/control.h"

enum {
        ARG_BACKGROUND = CLI_ARG_OWN,
        ARG_NO_WAIT,
};

typedef struct AppOp {
        const char *name;
        const char *method;
        const char *summary; /* the help's first lines */
        bool args;           /* start: -- ARGS */
        bool background;     /* start: --background */
        bool signal;         /* kill: -s SIG */
        bool wait;           /* restart: waits until it runs again (--no-wait) */
} AppOp;

static const AppOp ops[] = {
        {"start", "org.cella.Start",
         "Starts the installed app APP (cellad adds it from the store if it is not known yet):\n"
         "in the foreground (the app you work with; the previous foreground app becomes\n"
         "visible), with --background in the background; a service runs as a service.\n"
         "ARGS after -- are appended to the manifest's args.",
         .args = true, .background = true},
        {"restart", "org.cella.Restart",
         "Stops APP (SIGTERM, SIGKILL after 5 s) and starts it again in the role it had;\n"
         "starts it if it does not run. Waits until it runs again.",
         .wait = true},
        {"freeze", "org.cella.Freeze",
         "Freezes APP: every process of its sandbox stops where it is (the cgroup freezer:\n"
         "cgroup.freeze on cgroup v2 and hybrid hosts, freezer.state on v1), its memory\n"
         "kept. A packed Lua app cannot be frozen alone (its host runs its group)."},
        {"thaw", "org.cella.Thaw",
         "Thaws a frozen (or cached) APP: it runs on in the role it had."},
        {"kill", "org.cella.Kill",
         "Sends a signal to APP (SIGKILL by default, which kills its whole sandbox). A\n"
         "frozen app takes only SIGKILL.",
         .signal = true},
        {"foreground", "org.cella.Foreground",
         "Makes APP the foreground app; the previous foreground app becomes visible, the\n"
         "previous visible one background. A cached app is thawed."},
        {"background", "org.cella.Background",
         "Moves a foreground or visible APP to the background."},
        {"inspect", "org.cella.Inspect",
         "Shows everything cellad knows of APP: its state, pids, cgroup figures (memory,\n"
         "CPU, pids), grants, restarts, last exit and manifest."},
};

static const AppOp *current;

static void op_usage(FILE *f)
{
        const AppOp *o = current;

        fprintf(f, "Usage: cella %s [OPTIONS] APP%s\n\n%s\n\nOptions:\n", o->name,
                o->args ? " [-- ARGS...]" : "", o->summary);
        if (o->background)
                fprintf(f, "      --background      start it in the background\n");
        if (o->signal)
                fprintf(f, "  -s, --signal SIG      the signal: a name (TERM, SIGHUP) or a number "
                           "(default KILL)\n");
        if (o->wait)
                fprintf(f, "      --no-wait         return once it is asked, not once it runs\n");
        fprintf(f,
                "      --json            print the reply (or the error) as one JSON object\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Needs cellad (docs/daemon.md). Exit status: 0 done; 1 no such app, the wrong\n"
                "state for it (the message names the state), or it failed; 3 no cellad runs\n"
                "for the state directory; 240 bad command line; 242 not allowed (root or\n"
                "group cella).\n",
                cli_default_state_dir());
}

/* SIGTERM, TERM, term, 15 -> 15; -1 if none. */
static int parse_signal(const char *s)
{
        unsigned long long n;

        if (cli_parse_uint(s, 64, &n) == 0)
                return n >= 1 ? (int)n : -1;
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        for (int i = 1; i < 32; i++) {
                const char *abbrev = sigabbrev_np(i);

                if (abbrev && strcasecmp(s, abbrev) == 0)
                        return i;
        }
        return -1;
}

typedef struct Out {
        bool json;
        const char *name;
        json_t *reply;
} Out;

static int keep_reply(json_t *params, bool continues, void *ud)
{
        Out *o = ud;

        json_decref(o->reply);
        o->reply = json_incref(params);
        return 0;
}

static void print_kv(const char *key, json_t *v, int indent)
{
        char buf[512];

        if (json_is_object(v)) {
                const char *k;
                json_t *x;

                printf("%*s%s:\n", indent, "", key);
                json_object_foreach(v, k, x) print_kv(k, x, indent + 2);
                return;
        }
        if (json_is_array(v)) {
                size_t i, n = 0;
                json_t *x;
                bool scalars = true;

                json_array_foreach(v, i, x) scalars &= !json_is_object(x) && !json_is_array(x);
                printf("%*s%s:", indent, "", key);
                if (scalars) {
                        json_array_foreach(v, i, x)
                        {
                                char *s = json_dumps(x, JSON_ENCODE_ANY);

                                termsafe_field(s ?: "", sizeof buf - 4, buf, sizeof buf);
                                printf("%s%s", n++ ? ", " : " ", buf);
                                free(s);
                        }
                        putchar('\n');
                        return;
                }
                putchar('\n');
                json_array_foreach(v, i, x)
                {
                        char idx[24];

                        snprintf(idx, sizeof idx, "- %zu", i);
                        print_kv(idx, x, indent + 2);
                }
                return;
        }
        {
                char *s = json_is_string(v) ? strdup(json_string_value(v))
                                            : json_dumps(v, JSON_ENCODE_ANY);

                /* App-provided text (its id, args, manifest) goes out inert. */
                termsafe_field(s ?: "", sizeof buf - 4, buf, sizeof buf);
                printf("%*s%s: %s\n", indent, "", key, buf);
                free(s);
        }
}

static int run_op(const AppOp *o, int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, CLI_ARG_STATE_DIR},
                {"json", no_argument, NULL, CLI_ARG_JSON},
                {"background", no_argument, NULL, ARG_BACKGROUND},
                {"no-wait", no_argument, NULL, ARG_NO_WAIT},
                {"signal", required_argument, NULL, 's'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir(), *app;
        bool json = false, background = false, wait = o->wait;
        int c, code, signum = SIGKILL;
        json_t *params;
        Out out = {};

        current = o;
        while ((c = getopt_long(argc, argv, o->signal ? "s:h" : "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_BACKGROUND:
                        if (!o->background)
                                goto bad;
                        background = true;
                        break;
                case ARG_NO_WAIT:
                        if (!o->wait)
                                goto bad;
                        wait = false;
                        break;
                case 's':
                        signum = parse_signal(optarg);
                        if (signum < 0) {
                                log_error("%s: --signal: '%s' is not a signal name or number "
                                          "(1..64)",
                                          o->name, optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        break;
                default:
                bad:
                        if ((code = cli_common_option(c, optarg, &state_dir, &json, op_usage)) >= 0)
                                return code;
                        break;
                }
        }
        if (optind >= argc) {
                log_error("%s: which app? see 'cella %s --help'", o->name, o->name);
                return CELLA_EXIT_USAGE;
        }
        app = argv[optind++];
        if ((code = cli_app_id_arg(app)) != 0)
                return code;
        /* getopt has put a "--" before APP, so what follows APP are its ARGS. */
        if (optind < argc && !o->args) {
                log_error("%s: takes one app; see 'cella %s --help'", o->name, o->name);
                return CELLA_EXIT_USAGE;
        }
        params = json_pack("{s:s}", "app", app);
        if (!params)
                return CELLA_EXIT_INTERNAL;
        if (o->args && optind < argc) {
                json_t *a = json_array();

                for (int i = optind; a && i < argc; i++)
                        json_array_append_new(a, json_string(argv[i]));
                json_object_set_new(params, "args", a);
        }
        if (background)
                json_object_set_new(params, "background", json_true());
        if (o->signal)
                json_object_set_new(params, "signal", json_integer(signum));
        if (wait)
                json_object_set_new(params, "wait", json_true());
        out.json = json;
        out.name = o->name;
        code = cli_daemon_call(o->name, state_dir, o->method, params, false, json, keep_reply,
                               &out);
        if (code == 0 && out.reply) {
                if (json) {
                        char *s = json_dumps(out.reply, JSON_COMPACT);

                        if (s)
                                puts(s);
                        free(s);
                } else if (strcmp(o->name, "inspect") == 0) {
                        const char *k;
                        json_t *v;

                        json_object_foreach(out.reply, k, v) print_kv(k, v, 0);
                } else {
                        char id[MANIFEST_ID_MAX + 1], st[16];
                        json_int_t pid = json_integer_value(json_object_get(out.reply, "pid"));
                        bool color = cli_color(STDOUT_FILENO);
                        const char *sc;

                        cli_safe_str(json_object_get(out.reply, "app"), id, sizeof id);
                        cli_safe_str(json_object_get(out.reply, "state"), st, sizeof st);
                        sc = color ? cli_state_color(st) : "";
                        printf("%s: %s%s%s", id, sc, st, sc[0] ? CLI_COLOR_RESET : "");
                        if (pid > 0)
                                printf(" (pid %" JSON_INTEGER_FORMAT ")", pid);
                        putchar('\n');
                }
        }
        json_decref(out.reply);
        if (code == 0 && fflush(stdout) != 0)
                code = CELLA_EXIT_INTERNAL;
        return code;
}

static int run_named(const char *name, int argc, char **argv)
{
        for (size_t i = 0; i < ELEMENTSOF(ops); i++)
                if (strcmp(ops[i].name, name) == 0)
                        return run_op(&ops[i], argc, argv);
        return CELLA_EXIT_INTERNAL;
}

int cli_start(int argc, char **argv)
{
        return run_named("start", argc, argv);
}

int cli_restart(int argc, char **argv)
{
        return run_named("restart", argc, argv);
}

int cli_freeze(int argc, char **argv)
{
        return run_named("freeze", argc, argv);
}

int cli_thaw(int argc, char **argv)
{
        return run_named("thaw", argc, argv);
}

int cli_kill(int argc, char **argv)
{
        return run_named("kill", argc, argv);
}

int cli_foreground(int argc, char **argv)
{
        return run_named("foreground", argc, argv);
}

int cli_background(int argc, char **argv)
{
        return run_named("background", argc, argv);
}

int cli_inspect(int argc, char **argv)
{
        return run_named("inspect", argc, argv);
}
