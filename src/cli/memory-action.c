/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella memory ACTION [--level L] APP: one action of the memory manager by hand,
 * (without ACTION: the report, memory-show.c)
 * through cellad's org.cella.MemoryAction (root only; docs/cli.md "cella memory",
 * docs/memory.md "Actions"), recorded as the manager's own would be.
 *
 * Output: "APP: ACTION at LEVEL: STATE (N us)", or with --json the reply as one
 * JSON object. Exit status as the app commands' (app-op.c): 0 done; 1 refused or
 * failed; 3 no cellad; 240 bad command line; 242 not allowed (root only).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "policy/manifest.h"

enum {
        ARG_LEVEL = CLI_ARG_OWN,
};

static const char *const actions[] = {"trim", "reclaim", "restore", "freeze", "thaw", "kill"};

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: cella memory ACTION [OPTIONS] APP\n"
                "\n"
                "Does one action of the memory manager (docs/memory.md, \"Actions\") to APP,\n"
                "recorded as the manager's own (cella events: memory.ACTION):\n"
                "  trim      send the app event.memory_pressure with the level: a Lua app\n"
                "            runs a full collection and its cella.app.on_trim handler\n"
                "  reclaim   lower a background or cached app's soft limit (memory.high,\n"
                "            v1 memory.soft_limit_in_bytes) to a share of its use\n"
                "  restore   put back the soft limit the last reclaim found\n"
                "  freeze    background -> cached: cgroup.freeze (never the v1 freezer)\n"
                "  thaw      cached -> the role it had\n"
                "  kill      kill it (cgroup.kill) and wait until its cgroup is empty; its\n"
                "            exit is a low-memory kill (restart reason \"low-memory\")\n"
                "\n"
                "Options:\n"
                "      --level LEVEL     moderate, low or critical (default: critical for\n"
                "                        kill, moderate otherwise)\n"
                "      --json            print the reply (or the error) as one JSON object\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Needs cellad and root. Exit status: 0 done; 1 no such app, the wrong state\n"
                "for it, or it failed; 3 no cellad runs for the state directory; 240 bad\n"
                "command line; 242 not allowed.\n",
                cli_default_state_dir());
}

/* Whether the first operand (past the options and their values) is an action. */
static bool first_operand_is_action(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];

                if (strcmp(a, "--") == 0)
                        a = i + 1 < argc ? argv[i + 1] : NULL;
                else if (strcmp(a, "--state-dir") == 0 || strcmp(a, "--level") == 0) {
                        i++;
                        continue;
                } else if (a[0] == '-')
                        continue;
                for (size_t k = 0; a && k < ELEMENTSOF(actions); k++)
                        if (strcmp(a, actions[k]) == 0)
                                return true;
                return false;
        }
        return false;
}

static int keep_reply(json_t *params, bool continues, void *ud)
{
        json_t **out = ud;

        json_decref(*out);
        *out = json_incref(params);
        return 0;
}

int cli_memory(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, CLI_ARG_STATE_DIR},
                {"json", no_argument, NULL, CLI_ARG_JSON},
                {"level", required_argument, NULL, ARG_LEVEL},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir(), *action, *app, *level = NULL;
        json_t *params, *reply = NULL;
        bool json = false, known = false;
        int c, code;

        /* No ACTION first: the report (memory-show.c). */
        if (!first_operand_is_action(argc, argv))
                return cli_memory_show(argc, argv);
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == ARG_LEVEL) {
                        if (strcmp(optarg, "moderate") != 0 && strcmp(optarg, "low") != 0 &&
                            strcmp(optarg, "critical") != 0) {
                                log_error("memory: --level: '%s' is not moderate, low or critical",
                                          optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        level = optarg;
                        continue;
                }
                if ((code = cli_common_option(c, optarg, &state_dir, &json, usage)) >= 0)
                        return code;
        }
        if (argc - optind != 2) {
                log_error("memory: expected ACTION APP; see 'cella memory --help'");
                return CELLA_EXIT_USAGE;
        }
        action = argv[optind];
        app = argv[optind + 1];
        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                known |= strcmp(action, actions[i]) == 0;
        if (!known) {
                log_error("memory: '%s' is not an action (trim, reclaim, restore, freeze, thaw, "
                          "kill)",
                          action);
                return CELLA_EXIT_USAGE;
        }
        if ((code = cli_app_id_arg(app)) != 0)
                return code;
        params = json_pack("{s:s, s:s}", "app", app, "action", action);
        if (!params)
                return CELLA_EXIT_INTERNAL;
        if (level)
                json_object_set_new(params, "level", json_string(level));
        code = cli_daemon_call("memory", state_dir, "org.cella.MemoryAction", params, false, json,
                               keep_reply, &reply);
        if (code == 0 && reply) {
                if (json) {
                        char *s = json_dumps(reply, JSON_COMPACT);

                        if (s)
                                puts(s);
                        free(s);
                } else {
                        char id[MANIFEST_ID_MAX + 1], st[16], lv[16];

                        cli_safe_str(json_object_get(reply, "app"), id, sizeof id);
                        cli_safe_str(json_object_get(reply, "state"), st, sizeof st);
                        cli_safe_str(json_object_get(reply, "level"), lv, sizeof lv);
                        printf("%s: %s at %s: %s (%" JSON_INTEGER_FORMAT " us)\n", id, action, lv,
                               st, json_integer_value(json_object_get(reply, "duration_us")));
                }
        }
        json_decref(reply);
        if (code == 0 && fflush(stdout) != 0)
                code = CELLA_EXIT_INTERNAL;
        return code;
}
