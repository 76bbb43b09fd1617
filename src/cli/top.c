/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella top: a live table of the apps of every kernel on the state directory (cellad
 * is one), by CPU and then memory, refreshed like top(1). CPU% is the app's cgroup
 * CPU time (cpu_usage_usec of `cella ps --json`) between two samples over the wall
 * time between them: 100% is one CPU. With cellad: its memory level, the budget's
 * and the machine's use, and each of its apps' anon, swap and band (org.cella.Memory,
 * docs/memory.md "Visibility"). On a terminal each frame replaces the last;
 * otherwise frames are printed one after another, plain text, for scripts (-n N).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/time-util.h"
#include "cli/cli.h"
#include "cli/color.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "policy/manifest.h"
#include "supervisor/control.h"

#define TOP_DELAY_DEFAULT_MS 2000u
#define TOP_DELAY_MIN_MS     100u
#define TOP_DELAY_MAX_MS     3600000u
/* The first frame's sample window: short, so that `top -n 1` answers at once. */
#define TOP_FIRST_WINDOW_MS 250u

enum {
        ARG_STATE_DIR = 0x100,
};

static void top_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella top [OPTIONS]\n"
                "\n"
                "Shows the apps of every cella kernel on the state directory (cellad, cella\n"
                "boot, cella run), the busiest first: CPU (100%% is one CPU) over the last\n"
                "interval, then memory. Refreshed every interval until Ctrl-C, like top(1); to\n"
                "a pipe or a file, frames follow one another as plain text. With cellad, also\n"
                "its memory level, the apps' budget and the machine's use, and each app's\n"
                "anonymous memory, swap and band (cella memory --help).\n"
                "\n"
                "Options:\n"
                "  -d, --delay SECONDS   interval between frames (default 2; 0.1 .. 3600)\n"
                "  -n, --iterations N    stop after N frames\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Colour only on a terminal, and never with NO_COLOR set.\n"
                "\n"
                "Exit status: 0 shown; 2 shown, but a kernel did not answer within %u s;\n"
                "240 bad command line; 242 the state directory's run/ cannot be read (cella\n"
                "top needs root).\n",
                cli_default_state_dir(), CONTROL_CLIENT_TIMEOUT_MS / 1000);
}

/* One sample: the kernels' app records, cellad's memory report (org.cella.Memory;
 * NULL: no cellad, or it did not answer), and when they were taken. */
typedef struct Sample {
        json_t *apps;
        json_t *memory;
        uint64_t at_ns;
        bool incomplete;
} Sample;

/* cellad's org.cella.Memory reply's parameters, or NULL (no cellad on state_dir, or an
 * older one without the method: top shows what Ps gives). */
static json_t *sample_memory(const char *state_dir)
{
        json_t *reply = NULL, *p;

        if (!cli_daemon_running(state_dir) ||
            cli_cellad_call("top", state_dir, "org.cella.Memory", NULL, NULL, 0,
                            CONTROL_CLIENT_TIMEOUT_MS, &reply) != 0)
                return NULL;
        p = json_object_get(reply, "parameters");
        p = json_is_object(p) && !json_object_get(reply, "error") ? json_incref(p) : NULL;
        json_decref(reply);
        return p;
}

/* The memory record of rec (an org.cella.Ps row) in cellad's report, or NULL. */
static json_t *memory_of(json_t *memory, json_t *rec)
{
        const char *id = json_string_value(json_object_get(rec, "id"));
        size_t i;
        json_t *a;

        if (!memory || !id ||
            json_integer_value(json_object_get(rec, "kernel_pid")) !=
                    json_integer_value(json_object_get(memory, "kernel_pid")))
                return NULL;
        json_array_foreach(json_object_get(memory, "apps"), i, a)
        {
                const char *aid = json_string_value(json_object_get(a, "id"));

                if (aid && strcmp(aid, id) == 0)
                        return json_object_get(a, "memory");
        }
        return NULL;
}

static int sample(const char *state_dir, Sample *ret)
{
        json_t *apps = NULL, *mute = NULL;
        int code;

        code = cli_ask_kernels_all("top", state_dir, "org.cella.Ps", NULL, "apps", "apps", &apps,
                                   &mute);
        if (code != 0) {
                json_decref(mute);
                return code;
        }
        *ret = (Sample){.apps = apps,
                        .memory = sample_memory(state_dir),
                        .at_ns = now_monotonic_ns(),
                        .incomplete = json_array_size(mute) > 0};
        json_decref(mute);
        return 0;
}

/* The record of (id, kernel_pid) in apps, or NULL. */
static json_t *find_record(json_t *apps, json_t *rec)
{
        const char *id = json_string_value(json_object_get(rec, "id"));
        json_int_t k = json_integer_value(json_object_get(rec, "kernel_pid"));
        size_t i;
        json_t *a;

        json_array_foreach(apps, i, a)
        {
                const char *aid = json_string_value(json_object_get(a, "id"));

                if (id && aid && strcmp(id, aid) == 0 &&
                    json_integer_value(json_object_get(a, "kernel_pid")) == k)
                        return a;
        }
        return NULL;
}

typedef struct Row {
        json_t *rec;
        double cpu; /* percent of one CPU; < 0: unknown */
        int64_t mem;
} Row;

static int row_cmp(const void *x, const void *y)
{
        const Row *a = x, *b = y;

        if (a->cpu != b->cpu)
                return a->cpu < b->cpu ? 1 : -1;
        return (a->mem < b->mem) - (a->mem > b->mem);
}

/* cellad's memory: the level, the budget's use and pressure, the machine's. */
static void print_memory_header(json_t *m)
{
        char line[256], used[16], lim[16], avail[16], mused[16], mtotal[16];
        json_t *b = json_object_get(m, "apps_figures"), *mc = json_object_get(m, "machine");
        json_t *psi = json_object_get(b, "psi");

        if (!m)
                return;
        cli_memory_level_line(m, line, sizeof line);
        cli_format_json_bytes(json_object_get(b, "used"), used, sizeof used);
        cli_format_json_bytes(json_object_get(b, "limit"), lim, sizeof lim);
        cli_format_json_bytes(json_object_get(b, "available"), avail, sizeof avail);
        cli_format_json_bytes(json_object_get(mc, "used"), mused, sizeof mused);
        cli_format_json_bytes(json_object_get(mc, "limit"), mtotal, sizeof mtotal);
        printf("memory: %s\n", line);
        printf("apps: %s of %s (available %s), pressure some %.2f%% full %.2f%%; machine: %s "
               "of %s\n",
               used, lim, avail,
               (double)json_integer_value(json_object_get(psi, "some_avg10")) / 100.0,
               (double)json_integer_value(json_object_get(psi, "full_avg10")) / 100.0, mused,
               mtotal);
}

static void print_frame(const Sample *prev, const Sample *cur, bool tty, bool color)
{
        _cleanup_free_ Row *rows = calloc(json_array_size(cur->apps) + 1, sizeof *rows);
        double wall_us = (double)(cur->at_ns - prev->at_ns) / 1e3;
        char id[MANIFEST_ID_MAX + 1], state[16], pid[24], cpu[16], mem[16], kpid[24], when[16];
        size_t n = 0, w = 3, running = 0, i;
        double total = 0;
        time_t now = time(NULL);
        struct tm tm;
        json_t *a;

        if (!rows)
                return;
        json_array_foreach(cur->apps, i, a)
        {
                json_t *old = find_record(prev->apps, a);
                json_t *u1 = json_object_get(a, "cpu_usage_usec");
                json_t *u0 = old ? json_object_get(old, "cpu_usage_usec") : NULL;
                json_t *m = json_object_get(a, "memory_bytes");

                if (!json_is_string(json_object_get(a, "id")))
                        continue; /* a kernel that did not answer */
                rows[n].rec = a;
                rows[n].cpu = -1;
                if (json_is_integer(u1) && json_is_integer(u0) && wall_us > 0 &&
                    json_integer_value(u1) >= json_integer_value(u0) &&
                    json_integer_value(json_object_get(a, "pid")) ==
                            json_integer_value(json_object_get(old, "pid"))) {
                        rows[n].cpu = (double)(json_integer_value(u1) - json_integer_value(u0)) *
                                      100.0 / wall_us;
                        total += rows[n].cpu;
                }
                rows[n].mem = json_is_integer(m) ? (int64_t)json_integer_value(m) : -1;
                running += json_is_true(json_object_get(a, "running"));
                w = MAX(w, strlen(cli_safe_str(json_object_get(a, "id"), id, sizeof id)));
                n++;
        }
        qsort(rows, n, sizeof *rows, row_cmp);
        if (tty)
                fputs("\033[H\033[2J", stdout);
        localtime_r(&now, &tm);
        strftime(when, sizeof when, "%H:%M:%S", &tm);
        printf("cella top - %s  %zu app(s), %zu running, CPU %.1f%%%s\n", when, n, running, total,
               cur->incomplete ? "  (a kernel did not answer)" : "");
        print_memory_header(cur->memory);
        putchar('\n');
        printf("%s%-*s %-10s %8s %6s %7s %7s %7s %4s %8s %10s%s\n", color ? CLI_COLOR_BOLD : "",
               (int)w, "APP", "STATE", "PID", "CPU%", "MEMORY", "ANON", "SWAP", "BAND", "RESTARTS",
               "KERNEL-PID", color ? CLI_COLOR_RESET : "");
        for (i = 0; i < n; i++) {
                json_t *r = rows[i].rec, *mm, *fg;
                json_int_t p = json_integer_value(json_object_get(r, "pid"));
                char anon[16], swap[16], band[8];
                const char *sc;

                cli_safe_str(json_object_get(r, "id"), id, sizeof id);
                cli_safe_str(json_object_get(r, "state"), state, sizeof state);
                if (p > 0)
                        snprintf(pid, sizeof pid, "%" JSON_INTEGER_FORMAT, p);
                else
                        snprintf(pid, sizeof pid, "-");
                if (rows[i].cpu >= 0)
                        snprintf(cpu, sizeof cpu, "%.1f", rows[i].cpu);
                else
                        snprintf(cpu, sizeof cpu, "-");
                cli_format_bytes(rows[i].mem, mem, sizeof mem);
                snprintf(kpid, sizeof kpid, "%" JSON_INTEGER_FORMAT,
                         json_integer_value(json_object_get(r, "kernel_pid")));
                sc = color ? cli_state_color(state) : "";
                mm = memory_of(cur->memory, r);
                fg = json_object_get(mm, "figures");
                cli_format_json_bytes(json_object_get(fg, "anon"), anon, sizeof anon);
                cli_format_json_bytes(json_object_get(fg, "swap"), swap, sizeof swap);
                if (json_is_integer(json_object_get(mm, "band")))
                        snprintf(band, sizeof band, "%" JSON_INTEGER_FORMAT,
                                 json_integer_value(json_object_get(mm, "band")));
                else
                        snprintf(band, sizeof band, "-");
                printf("%-*s %s%-10s%s %8s %6s %7s %7s %7s %4s %8" JSON_INTEGER_FORMAT " %10s\n",
                       (int)w, id, sc, state, sc[0] ? CLI_COLOR_RESET : "", pid, cpu, mem, anon,
                       swap, band, json_integer_value(json_object_get(r, "restarts")), kpid);
        }
        if (!tty)
                putchar('\n');
        fflush(stdout);
}

static void sleep_ms(uint64_t ms)
{
        struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                              .tv_nsec = (long)(ms % 1000) * 1000000};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int cli_top(int argc, char **argv)
{
        static const struct option options[] = {
                {"delay", required_argument, NULL, 'd'},
                {"iterations", required_argument, NULL, 'n'},
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir();
        unsigned long long iterations = 0, delay_ms = TOP_DELAY_DEFAULT_MS;
        Sample prev = {}, cur = {};
        bool tty = isatty(STDOUT_FILENO) == 1, color = cli_color(STDOUT_FILENO), incomplete = false;
        int c, code;

        while ((c = getopt_long(argc, argv, "d:n:h", options, NULL)) >= 0) {
                switch (c) {
                case 'd': {
                        char *end = NULL;
                        double s;

                        errno = 0;
                        s = strtod(optarg, &end);
                        if (errno || !end || *end || end == optarg ||
                            !(s * 1000 >= TOP_DELAY_MIN_MS) || s * 1000 > TOP_DELAY_MAX_MS) {
                                log_error("top: --delay: expected seconds from 0.1 to 3600, not "
                                          "'%s'",
                                          optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        delay_ms = (unsigned long long)(s * 1000);
                        break;
                }
                case 'n':
                        if (cli_parse_uint(optarg, 1000000000ull, &iterations) < 0 ||
                            iterations == 0) {
                                log_error("top: --iterations: expected a number of frames >= 1, "
                                          "not '%s'",
                                          optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        break;
                case ARG_STATE_DIR:
                        if ((code = cli_state_dir_arg(optarg, &state_dir)) != 0)
                                return code;
                        break;
                case 'h':
                        top_usage(stdout);
                        return 0;
                default:
                        top_usage(stderr);
                        return CELLA_EXIT_USAGE;
                }
        }
        if (optind != argc) {
                log_error("top: takes no arguments; see 'cella top --help'");
                return CELLA_EXIT_USAGE;
        }
        code = sample(state_dir, &prev);
        if (code != 0)
                return code;
        sleep_ms(TOP_FIRST_WINDOW_MS);
        for (unsigned long long k = 0; iterations == 0 || k < iterations; k++) {
                code = sample(state_dir, &cur);
                if (code != 0)
                        break;
                incomplete |= cur.incomplete;
                print_frame(&prev, &cur, tty, color);
                json_decref(prev.apps);
                json_decref(prev.memory);
                prev = cur;
                cur = (Sample){};
                if (iterations == 0 || k + 1 < iterations)
                        sleep_ms(delay_ms);
        }
        json_decref(prev.apps);
        json_decref(prev.memory);
        if (code == 0 && ferror(stdout))
                code = CELLA_EXIT_INTERNAL;
        return code != 0 ? code : incomplete ? CELLA_EXIT_INCOMPLETE : 0;
}
