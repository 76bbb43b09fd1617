/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella memory [APP]: what cellad's memory manager sees and did, through
 * org.cella.Memory (docs/api.md; docs/cli.md "cella memory"): the level, the apps'
 * budget's and the machine's figures, the compressed swap, each running app's
 * figures and band, and the recent memory.* actions. --json prints the reply.
 * Also the figures `cella top` shows (cli_memory_line()).
 */
#include <getopt.h>
#include <sys/param.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "policy/manifest.h"

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: cella memory [OPTIONS] [APP]\n"
                "       cella memory ACTION [--level LEVEL] APP   (see cella memory trim --help)\n"
                "\n"
                "Shows what cellad's memory manager sees (docs/memory.md): the level (normal,\n"
                "moderate, low, critical), the apps' budget (memory.total) and the machine:\n"
                "in use (anon, file, shmem, kernel), peak, limit, available, swap, OOM kills,\n"
                "memory pressure (PSI: share of time some / all tasks stalled, 10 s average);\n"
                "the compressed swap (zram, zswap) and the swap caps; each running app's\n"
                "figures and band (0 foreground .. 999 the least recently used cached app);\n"
                "and the recent memory actions (trim, reclaim, restore, freeze, thaw, kill).\n"
                "With APP, only that app and its actions.\n"
                "\n"
                "Options:\n"
                "      --json            print the reply as one JSON object\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Needs cellad. Exit status: 0 shown; 1 no such app; 3 no cellad runs for\n"
                "the state directory; 240 bad command line; 242 not allowed.\n",
                cli_default_state_dir());
}

/* A PSI avg10 (hundredths of a percent) as "1.25%", or "-". */
static const char *psi_str(json_t *psi, const char *key, char *buf, size_t size)
{
        json_t *v = json_object_get(psi, key);

        if (!json_is_integer(v))
                snprintf(buf, size, "-");
        else
                snprintf(buf, size, "%.2f%%", (double)json_integer_value(v) / 100.0);
        return buf;
}

/* One line of a target's figures (the budget, the machine). */
static void print_target(const char *name, json_t *f)
{
        char c[16], a[16], fi[16], sh[16], k[16], p[16], l[16], av[16], sw[16], ps[16], pf[16];
        json_t *psi = json_object_get(f, "psi");

        if (!json_is_object(f) || json_object_get(f, "error")) {
                char e[128];

                printf("%s: cannot read: %s\n", name,
                       cli_safe_field(json_object_get(f, "error"), e, sizeof e));
                return;
        }
        printf("%s: %s in use (anon %s, file %s, shmem %s, kernel %s), peak %s, limit %s, "
               "available %s, swap %s, OOM kills %" JSON_INTEGER_FORMAT
               ", pressure some %s full %s\n",
               name, cli_format_json_bytes(json_object_get(f, "used"), c, sizeof c),
               cli_format_json_bytes(json_object_get(f, "anon"), a, sizeof a),
               cli_format_json_bytes(json_object_get(f, "file"), fi, sizeof fi),
               cli_format_json_bytes(json_object_get(f, "shmem"), sh, sizeof sh),
               cli_format_json_bytes(json_object_get(f, "kernel"), k, sizeof k),
               cli_format_json_bytes(json_object_get(f, "peak"), p, sizeof p),
               cli_format_json_bytes(json_object_get(f, "limit"), l, sizeof l),
               cli_format_json_bytes(json_object_get(f, "available"), av, sizeof av),
               cli_format_json_bytes(json_object_get(f, "swap"), sw, sizeof sw),
               json_integer_value(json_object_get(f, "oom_kills")),
               psi_str(psi, "some_avg10", ps, sizeof ps),
               psi_str(psi, "full_avg10", pf, sizeof pf));
}

void cli_memory_level_line(json_t *r, char *buf, size_t size)
{
        char lv[16], src[16];
        json_t *deg = json_object_get(r, "degraded");

        cli_safe_str(json_object_get(r, "level"), lv, sizeof lv);
        cli_safe_str(json_object_get(r, "level_source"), src, sizeof src);
        snprintf(buf, size, "level %s (%s)%s", lv,
                 strcmp(src, "manager") == 0 ? "the manager's" : "from the figures now",
                 json_is_true(deg)    ? ", degraded: the kernel refused the trigger window asked "
                                        "for, a longer one runs"
                 : json_is_false(deg) ? ""
                                      : ", the manager does not run");
}

static void print_swap(json_t *s)
{
        char kind[16], t[16], fr[16], why[128], alg[40];

        cli_safe_str(json_object_get(s, "kind"), kind, sizeof kind);
        printf("swap: %s", kind);
        if (strcmp(kind, "none") != 0)
                printf(", %s of %s free, %" JSON_INTEGER_FORMAT " area(s)",
                       cli_format_json_bytes(json_object_get(s, "free_bytes"), fr, sizeof fr),
                       cli_format_json_bytes(json_object_get(s, "total_bytes"), t, sizeof t),
                       json_integer_value(json_object_get(s, "areas")));
        if (json_integer_value(json_object_get(s, "zram_swap_areas")) > 0)
                printf(", zram %s",
                       cli_safe_str(json_object_get(s, "zram_algorithm"), alg, sizeof alg));
        if (json_is_true(json_object_get(s, "zswap")))
                printf(", zswap %s",
                       cli_safe_str(json_object_get(s, "zswap_compressor"), alg, sizeof alg));
        printf("; caps by state: %s (%s)\n",
               json_is_true(json_object_get(s, "caps")) ? "on" : "off",
               cli_safe_field(json_object_get(s, "caps_why"), why, sizeof why));
}

static void print_apps(json_t *apps)
{
        char id[MANIFEST_ID_MAX + 1], st[16], b[8], c[16], a[16], f[16], sh[16], k[16], p[16],
                l[16], sw[16], ps[16];
        size_t w = 3, i;
        json_t *x;

        json_array_foreach(apps, i, x) w =
                MAX(w, strlen(cli_safe_str(json_object_get(x, "id"), id, sizeof id)));
        printf("%-*s %-10s %4s %7s %7s %7s %7s %7s %7s %7s %7s %4s %8s\n", (int)w, "APP", "STATE",
               "BAND", "CURRENT", "ANON", "FILE", "SHMEM", "KERNEL", "PEAK", "LIMIT", "SWAP", "OOM",
               "PSI-SOME");
        json_array_foreach(apps, i, x)
        {
                json_t *m = json_object_get(x, "memory"), *fg = json_object_get(m, "figures");
                json_t *band = json_object_get(m, "band");

                if (json_is_integer(band))
                        snprintf(b, sizeof b, "%" JSON_INTEGER_FORMAT, json_integer_value(band));
                else
                        snprintf(b, sizeof b, "-");
                printf("%-*s %-10s %4s %7s %7s %7s %7s %7s %7s %7s %7s %4" JSON_INTEGER_FORMAT
                       " %8s\n",
                       (int)w, cli_safe_str(json_object_get(x, "id"), id, sizeof id),
                       cli_safe_str(json_object_get(x, "state"), st, sizeof st), b,
                       cli_format_json_bytes(json_object_get(fg, "used"), c, sizeof c),
                       cli_format_json_bytes(json_object_get(fg, "anon"), a, sizeof a),
                       cli_format_json_bytes(json_object_get(fg, "file"), f, sizeof f),
                       cli_format_json_bytes(json_object_get(fg, "shmem"), sh, sizeof sh),
                       cli_format_json_bytes(json_object_get(fg, "kernel"), k, sizeof k),
                       cli_format_json_bytes(json_object_get(fg, "peak"), p, sizeof p),
                       cli_format_json_bytes(json_object_get(fg, "limit"), l, sizeof l),
                       cli_format_json_bytes(json_object_get(fg, "swap"), sw, sizeof sw),
                       json_integer_value(json_object_get(fg, "oom_kills")),
                       psi_str(json_object_get(fg, "psi"), "some_avg10", ps, sizeof ps));
        }
}

/* "HH:MM:SS.mmm memory.kill org.x level=critical freed_bytes=..." per record. */
static void print_recent(json_t *recent)
{
        size_t i;
        json_t *r;

        if (json_array_size(recent) == 0) {
                printf("recent actions: none since cellad started\n");
                return;
        }
        printf("recent actions (oldest first):\n");
        json_array_foreach(recent, i, r)
        {
                json_int_t ms = json_integer_value(json_object_get(r, "time_ms"));
                time_t t = (time_t)(ms / 1000);
                char when[16], what[32], id[MANIFEST_ID_MAX + 1];
                const char *key;
                struct tm tm;
                json_t *v;

                localtime_r(&t, &tm);
                strftime(when, sizeof when, "%H:%M:%S", &tm);
                printf("  %s.%03d %s %s", when, (int)(ms % 1000),
                       cli_safe_str(json_object_get(r, "what"), what, sizeof what),
                       cli_safe_str(json_object_get(r, "app"), id, sizeof id));
                json_object_foreach(r, key, v)
                {
                        char val[64], k[40];
                        json_t *kj;

                        if (strcmp(key, "what") == 0 || strcmp(key, "app") == 0 ||
                            strcmp(key, "time_ms") == 0)
                                continue;
                        if (json_is_integer(v))
                                snprintf(val, sizeof val, "%" JSON_INTEGER_FORMAT,
                                         json_integer_value(v));
                        else if (json_is_null(v))
                                snprintf(val, sizeof val, "-");
                        else
                                cli_safe_str(v, val, sizeof val);
                        kj = json_string(key);
                        cli_safe_str(kj, k, sizeof k);
                        json_decref(kj);
                        printf(" %s=%s", k, val);
                }
                putchar('\n');
        }
}

static int keep_reply(json_t *params, bool continues, void *ud)
{
        json_t **out = ud;

        json_decref(*out);
        *out = json_incref(params);
        return 0;
}

int cli_memory_show(int argc, char **argv)
{
        const char *state_dir = cli_default_state_dir(), *app = NULL;
        json_t *params, *reply = NULL;
        bool json = false;
        int code;

        if (!cli_parse_common_options(argc, argv, usage, &state_dir, &json, &code))
                return code;
        if (argc - optind > 1) {
                log_error("memory: expected at most one APP, or ACTION APP; see 'cella memory "
                          "--help'");
                return CELLA_EXIT_USAGE;
        }
        if (argc - optind == 1) {
                app = argv[optind];
                if ((code = cli_app_id_arg(app)) != 0)
                        return code;
        }
        params = app ? json_pack("{s:s}", "app", app) : json_object();
        if (!params)
                return CELLA_EXIT_INTERNAL;
        code = cli_daemon_call("memory", state_dir, "org.cella.Memory", params, false, json,
                               keep_reply, &reply);
        if (code == 0 && reply) {
                if (json)
                        code = cli_print_json(reply);
                else {
                        char line[256], b[16];

                        cli_memory_level_line(reply, line, sizeof line);
                        printf("%s\n", line);
                        snprintf(line, sizeof line, "budget (memory.total %s)",
                                 cli_format_json_bytes(json_object_get(reply, "budget_bytes"), b,
                                                       sizeof b));
                        print_target(json_is_null(json_object_get(reply, "budget_bytes"))
                                             ? "apps (no memory.total)"
                                             : line,
                                     json_object_get(reply, "apps_figures"));
                        print_target("machine", json_object_get(reply, "machine"));
                        print_swap(json_object_get(reply, "swap"));
                        putchar('\n');
                        print_apps(json_object_get(reply, "apps"));
                        putchar('\n');
                        print_recent(json_object_get(reply, "recent"));
                }
        }
        json_decref(reply);
        if (code == 0 && fflush(stdout) != 0)
                code = CELLA_EXIT_INTERNAL;
        return code;
}
