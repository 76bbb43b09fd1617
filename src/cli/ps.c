/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella ps: the apps of every kernel (`cella run`, `cella boot`) sharing a state
 * directory, asked over each kernel's control socket (supervisor/control.h). The
 * record fields are documented in docs/cli.md ("cella ps").
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <time.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/time-util.h"
#include "cli/cli.h"
#include "policy/manifest.h"
#include "cli/exit-codes.h"
#include "supervisor/control.h"

enum {
        ARG_ALL = CLI_ARG_OWN,
        ARG_WATCH,
};

static void ps_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella ps [OPTIONS]\n"
                "\n"
                "Lists the apps of every cella kernel (cella run, cella boot) running on the\n"
                "state directory, one line per app.\n"
                "\n"
                "Options:\n"
                "  -a, --all             also the apps installed (cellad's store) that no\n"
                "                        kernel knows, in state installed\n"
                "  -w, --watch           a new list on every state change (cellad's stream,\n"
                "                        at most 10 a second; without cellad, every kernel\n"
                "                        is asked each second), until Ctrl-C\n"
                "      --json            one JSON array of app records (docs/cli.md); with\n"
                "                        --watch one array a line\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Every kernel is asked at once; one that is alive but does not answer within\n"
                "%u s is named on stderr (and in --json as a record with \"state\":\n"
                "\"not-answering\"), never left out silently.\n"
                "\n"
                "Exit status: 0 listed (also when no kernel runs); 2 listed, but a kernel\n"
                "did not answer, so its apps are missing; 240 bad command line; 242 the state\n"
                "directory's run/ cannot be read (cella ps needs root).\n",
                cli_default_state_dir(), CONTROL_CLIENT_TIMEOUT_MS / 1000);
}

/* "3d4h", "2h05m", "4m07s", "12s"; "-" when unknown. */
static void format_uptime(int64_t ms, char *buf, size_t size)
{
        int64_t s = ms / 1000;

        if (ms < 0)
                snprintf(buf, size, "-");
        else if (s >= 86400)
                snprintf(buf, size, "%" PRId64 "d%" PRId64 "h", s / 86400, s % 86400 / 3600);
        else if (s >= 3600)
                snprintf(buf, size, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
        else if (s >= 60)
                snprintf(buf, size, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
        else
                snprintf(buf, size, "%" PRId64 "s", s);
}

static void format_int(json_t *v, char *buf, size_t size)
{
        if (json_is_integer(v))
                snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else
                snprintf(buf, size, "-");
}

static void print_table(json_t *apps)
{
        char id[MANIFEST_ID_MAX + 1], state[16], pid[24], uid[24], up[24], mem[24], restarts[24],
                calls[24], kpid[24], group[MANIFEST_GROUP_MAX + 1];
        size_t i, w = 3, gw = 0;
        int64_t now = now_realtime_ms();
        json_t *a;

        json_array_foreach(apps, i, a)
        {
                size_t n = strlen(cli_safe_str(json_object_get(a, "id"), id, sizeof id));

                if (n > w)
                        w = n;
                if (json_is_string(json_object_get(a, "group")))
                        gw = MAX(gw, MAX((size_t)5, strlen(cli_safe_str(json_object_get(a, "group"),
                                                                        group, sizeof group))));
        }
        /* A packed app's PID is its group's host (shared with the other members); the
         * GROUP column shows only when a packed app is listed. */
        printf("%-*s %8s %10s %-10s ", (int)w, "APP", "PID", "UID", "STATE");
        if (gw)
                printf("%-*s ", (int)gw, "GROUP");
        printf("%8s %7s %8s %9s %10s\n", "UPTIME", "MEMORY", "RESTARTS", "CALLS", "KERNEL-PID");
        json_array_foreach(apps, i, a)
        {
                json_t *started = json_object_get(a, "started_ms");
                int64_t start = json_is_integer(started) ? json_integer_value(started) : 0;
                json_t *p = json_object_get(a, "pid");

                cli_safe_str(json_object_get(a, "id"), id, sizeof id);
                cli_safe_str(json_object_get(a, "state"), state, sizeof state);
                cli_safe_str(json_object_get(a, "group"), group, sizeof group);
                if (json_is_integer(p) && json_integer_value(p) > 0)
                        format_int(p, pid, sizeof pid);
                else
                        snprintf(pid, sizeof pid, "-");
                format_int(json_object_get(a, "uid"), uid, sizeof uid);
                format_uptime(start > 0 && start <= now ? now - start : -1, up, sizeof up);
                cli_format_json_bytes(json_object_get(a, "memory_bytes"), mem, sizeof mem);
                format_int(json_object_get(a, "restarts"), restarts, sizeof restarts);
                format_int(json_object_get(a, "calls"), calls, sizeof calls);
                format_int(json_object_get(a, "kernel_pid"), kpid, sizeof kpid);
                printf("%-*s %8s %10s %-10s ", (int)w, id, pid, uid, state);
                if (gw)
                        printf("%-*s ", (int)gw, group);
                printf("%8s %7s %8s %9s %10s\n", up, mem, restarts, calls, kpid);
        }
}

int cli_ps(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, CLI_ARG_STATE_DIR},
                {"json", no_argument, NULL, CLI_ARG_JSON},
                {"all", no_argument, NULL, 'a'},
                {"watch", no_argument, NULL, 'w'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir();
        json_t *req = NULL, *apps = NULL, *mute = NULL;
        bool json = false, all = false, watch = false;
        int c, code;

        while ((c = getopt_long(argc, argv, "awh", options, NULL)) >= 0) {
                switch (c) {
                case 'a':
                        all = true;
                        break;
                case 'w':
                        watch = true;
                        break;
                default:
                        if ((code = cli_common_option(c, optarg, &state_dir, &json, ps_usage)) >= 0)
                                return code;
                        break;
                }
        }
        if (optind != argc) {
                log_error("ps: takes no arguments; see 'cella ps --help'");
                return CELLA_EXIT_USAGE;
        }

        if (watch)
                return cli_ps_watch(state_dir, all, json, print_table);
        code = cli_ask_kernels_all("ps", state_dir, "org.cella.Ps", NULL, "apps", "apps", &apps,
                                   &mute);
        if (code != 0)
                goto out;
        if (all && cli_ps_add_installed(state_dir, apps) < 0)
                log_warning("ps: cannot list the installed apps of %s", state_dir);
        if (json) {
                /* a kernel that did not answer is a record too, with no "id" */
                if (json_array_extend(apps, mute) < 0) {
                        code = CELLA_EXIT_INTERNAL;
                        goto out;
                }
                char *s = json_dumps(apps, JSON_COMPACT);

                if (!s) {
                        code = CELLA_EXIT_INTERNAL;
                        goto out;
                }
                puts(s);
                free(s);
        } else
                print_table(apps);
        code = fflush(stdout) != 0         ? CELLA_EXIT_INTERNAL
               : json_array_size(mute) > 0 ? CELLA_EXIT_INCOMPLETE
                                           : 0;
out:
        json_decref(req);
        json_decref(apps);
        json_decref(mute);
        return code;
}
