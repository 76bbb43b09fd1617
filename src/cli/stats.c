/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella stats: the scheduler counters of every running Lua host (a Lua app alone,
 * or a packed group's host), from the stats file each host keeps
 * (src/lua/stats.h), asked over each kernel's control socket (org.cella.Stats,
 * docs/cli.md "cella stats").
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>

#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "policy/manifest.h"
#include "cli/exit-codes.h"
#include "supervisor/control.h"

static void stats_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella stats [OPTIONS] [APP]\n"
                "\n"
                "Shows the scheduler statistics of every running Lua host (a Lua app, or a\n"
                "packed group's host): per host its scheduler, time slice, slices,\n"
                "preemptions, yields, switches and CPU time; per app its state, CPU class,\n"
                "priority, weight, slices, preemptions, yields, callbacks, CPU and virtual "
                "runtime,\n"
                "memory and fault. With APP, only that app's host and record.\n"
                "\n"
                "Options:\n"
                "      --json            one JSON object {\"hosts\": [...]} (docs/cli.md)\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Every kernel is asked at once; one that is alive but does not answer within\n"
                "%u s is named on stderr (and in --json under \"not_answering\").\n"
                "\n"
                "Exit status: 0 shown (also when no Lua host runs); 1 APP is not a running\n"
                "Lua app; 2 a kernel did not answer, so its hosts are missing; 240 bad\n"
                "command line; 242 the state directory's run/ cannot be read (cella stats\n"
                "needs root).\n",
                cli_default_state_dir(), CONTROL_CLIENT_TIMEOUT_MS / 1000);
}

static const char *fmt_int(json_t *v, char *buf, size_t size)
{
        if (json_is_integer(v))
                snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else
                snprintf(buf, size, "-");
        return buf;
}

static const char *fmt_ms(json_t *v, char *buf, size_t size)
{
        if (json_is_number(v))
                snprintf(buf, size, "%.1f", json_number_value(v));
        else
                snprintf(buf, size, "-");
        return buf;
}

static void print_host(json_t *h)
{
        char name[MANIFEST_ID_MAX + 1], sched[16], b[8][32], id[MANIFEST_ID_MAX + 1], state[16];
        json_t *apps = json_object_get(h, "apps"), *a;
        size_t i, w = 3;

        printf("HOST %s (%s) pid %s  scheduler %s  slice %s ms  slices %s  preemptions %s  "
               "yields %s  switches %s  cpu %s ms\n",
               cli_safe_str(json_object_get(h, "host"), name, sizeof name),
               json_is_string(json_object_get(h, "group")) ? "packed group" : "single app",
               fmt_int(json_object_get(h, "pid"), b[0], sizeof b[0]),
               cli_safe_str(json_object_get(h, "scheduler"), sched, sizeof sched),
               fmt_ms(json_object_get(h, "slice_ms"), b[1], sizeof b[1]),
               fmt_int(json_object_get(h, "slices"), b[2], sizeof b[2]),
               fmt_int(json_object_get(h, "preemptions"), b[3], sizeof b[3]),
               fmt_int(json_object_get(h, "yields"), b[4], sizeof b[4]),
               fmt_int(json_object_get(h, "switches"), b[5], sizeof b[5]),
               fmt_ms(json_object_get(h, "cpu_ms"), b[6], sizeof b[6]));
        json_array_foreach(apps, i, a)
        {
                size_t n = strlen(cli_safe_str(json_object_get(a, "id"), id, sizeof id));

                w = MAX(w, n);
        }
        printf("  %-*s %-8s %-10s %4s %6s %8s %7s %7s %9s %10s %11s %8s %8s %5s\n", (int)w, "APP",
               "STATE", "CLASS", "PRIO", "WEIGHT", "SLICES", "PREEMPT", "YIELDS", "CALLBACKS",
               "CPU-MS", "VRUNTIME-MS", "MEM-KIB", "PEAK-KIB", "FAULT");
        json_array_foreach(apps, i, a)
        {
                char c[13][32], cls[16];

                /* CLASS: its CPU class (docs/memory.md "CPU"), "-" until the kernel
                 * told the host. */
                printf("  %-*s %-8s %-10s %4s %6s %8s %7s %7s %9s %10s %11s %8s %8s %5s\n", (int)w,
                       cli_safe_str(json_object_get(a, "id"), id, sizeof id),
                       cli_safe_str(json_object_get(a, "state"), state, sizeof state),
                       json_is_string(json_object_get(a, "class"))
                               ? cli_safe_str(json_object_get(a, "class"), cls, sizeof cls)
                               : "-",
                       fmt_int(json_object_get(a, "priority"), c[0], sizeof c[0]),
                       fmt_int(json_object_get(a, "weight"), c[1], sizeof c[1]),
                       fmt_int(json_object_get(a, "slices"), c[2], sizeof c[2]),
                       fmt_int(json_object_get(a, "preemptions"), c[3], sizeof c[3]),
                       fmt_int(json_object_get(a, "yields"), c[4], sizeof c[4]),
                       fmt_int(json_object_get(a, "callbacks"), c[5], sizeof c[5]),
                       fmt_ms(json_object_get(a, "cpu_ms"), c[6], sizeof c[6]),
                       fmt_ms(json_object_get(a, "vruntime_ms"), c[7], sizeof c[7]),
                       fmt_int(json_object_get(a, "memory_kib"), c[8], sizeof c[8]),
                       fmt_int(json_object_get(a, "memory_peak_kib"), c[9], sizeof c[9]),
                       fmt_int(json_object_get(a, "fault"), c[10], sizeof c[10]));
        }
}

int cli_stats(int argc, char **argv)
{
        const char *state_dir, *app = NULL;
        json_t *req = NULL, *hosts = NULL, *mute = NULL, *h;
        bool json = false;
        size_t i;
        int code;

        if (!cli_parse_common_options(argc, argv, stats_usage, &state_dir, &json, &code))
                return code;
        if (argc - optind > 1) {
                log_error("stats: takes at most one APP; see 'cella stats --help'");
                return CELLA_EXIT_USAGE;
        }
        if (optind < argc) {
                app = argv[optind];
                if ((code = cli_app_id_arg(app)) != 0)
                        return code;
        }

        req = app ? json_pack("{s:s}", "app", app) : json_object();
        if (!req) {
                code = CELLA_EXIT_INTERNAL;
                goto out;
        }
        code = cli_ask_kernels_all("stats", state_dir, "org.cella.Stats", req, "hosts", "stats",
                                   &hosts, &mute);
        if (code != 0)
                goto out;
        if (json) {
                json_t *o = json_pack("{s:O, s:O}", "hosts", hosts, "not_answering", mute);
                char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

                json_decref(o);
                if (!s) {
                        code = CELLA_EXIT_INTERNAL;
                        goto out;
                }
                puts(s);
                free(s);
        } else {
                json_array_foreach(hosts, i, h)
                {
                        if (i > 0)
                                putchar('\n');
                        print_host(h);
                }
        }
        code = fflush(stdout) == 0 ? 0 : CELLA_EXIT_INTERNAL;
        if (code == 0 && json_array_size(mute) > 0)
                code = CELLA_EXIT_INCOMPLETE; /* APP may run on the kernel that was mute */
        else if (code == 0 && app && json_array_size(hosts) == 0) {
                log_error("%s is not a running Lua app (or its host has not started yet)", app);
                code = 1;
        }
out:
        json_decref(req);
        json_decref(hosts);
        json_decref(mute);
        return code;
}
