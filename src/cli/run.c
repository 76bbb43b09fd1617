/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cella run: option parsing; the work is supervisor_run(). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "supervisor/exit-codes.h"
#include "supervisor/run.h"
#include "supervisor/state.h"

enum {
        ARG_STATE_DIR = 0x100,
        ARG_JSON_STATUS,
        ARG_UID_RANGE,
        ARG_CGROUP_MODE,
};

static void run_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella run [OPTIONS] APP_DIR [-- ARGS...]\n"
                "\n"
                "Runs the app in APP_DIR (a folder with a manifest.json) in a new sandbox,\n"
                "streams its stdout and stderr, and exits with its status.\n"
                "\n"
                "Options:\n"
                "      --state-dir DIR      state directory (default %s)\n"
                "      --json-status FD     write JSON-lines status records (started, exited,\n"
                "                           failed) to file descriptor FD\n"
                "      --uid-range BASE:N   host uids for new apps (default %u:%u)\n"
                "      --cgroup-mode MODE   auto, v1, v2 or hybrid (default auto)\n"
                "  -v, --verbose            more messages\n"
                "  -h, --help               this text\n"
                "\n"
                "Exit status: the app's; 126 entry not executable; 127 entry not found;\n"
                "128+N app killed by signal N; 240-254 cella's own failures (docs/cli.md).\n",
                cli_default_state_dir(), STATE_UID_BASE_DEFAULT, STATE_UID_COUNT_DEFAULT);
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *ret)
{
        char *end;
        unsigned long long v;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int cli_run(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"json-status", required_argument, NULL, ARG_JSON_STATUS},
                {"uid-range", required_argument, NULL, ARG_UID_RANGE},
                {"cgroup-mode", required_argument, NULL, ARG_CGROUP_MODE},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        RunOptions o = {
                .state_dir = cli_default_state_dir(),
                .json_status_fd = -1,
                .uid_base = STATE_UID_BASE_DEFAULT,
                .uid_count = STATE_UID_COUNT_DEFAULT,
        };
        unsigned long long v, n;
        int c, code;

        /* "+": stop at the first non-option, so the app's own args are left alone. */
        while ((c = getopt_long(argc, argv, "+vh", options, NULL)) >= 0) {
                switch (c) {
                case ARG_STATE_DIR:
                        if ((code = cli_state_dir_arg(optarg, &o.state_dir)) != 0)
                                return code;
                        break;
                case ARG_JSON_STATUS:
                        if (parse_uint(optarg, 1 << 20, &v) < 0 || fcntl((int)v, F_GETFD) < 0) {
                                log_error("--json-status: '%s' is not an open file descriptor",
                                          optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        o.json_status_fd = (int)v;
                        break;
                case ARG_UID_RANGE: {
                        char *colon = strchr(optarg, ':');

                        if (!colon) {
                                log_error("--uid-range: expected BASE:COUNT, got '%s'", optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        *colon = 0;
                        if (parse_uint(optarg, 0xFFFFFFFEull, &v) < 0 || v == 0 ||
                            parse_uint(colon + 1, 0xFFFFFFFEull, &n) < 0 || n == 0 ||
                            v + n > 0xFFFFFFFEull) {
                                log_error("--uid-range: expected BASE:COUNT with BASE > 0 and "
                                          "BASE+COUNT below 4294967294");
                                return CELLA_EXIT_USAGE;
                        }
                        o.uid_base = (uid_t)v;
                        o.uid_count = (uint32_t)n;
                        break;
                }
                case ARG_CGROUP_MODE:
                        if (strcmp(optarg, "auto") == 0)
                                o.cgroup_mode = CGROUP_MODE_AUTO;
                        else if (strcmp(optarg, "v1") == 0)
                                o.cgroup_mode = CGROUP_MODE_V1;
                        else if (strcmp(optarg, "v2") == 0)
                                o.cgroup_mode = CGROUP_MODE_V2;
                        else if (strcmp(optarg, "hybrid") == 0)
                                o.cgroup_mode = CGROUP_MODE_HYBRID;
                        else {
                                log_error(
                                        "--cgroup-mode: expected auto, v1, v2 or hybrid, got '%s'",
                                        optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        break;
                case 'v':
                        log_verbose = 1;
                        break;
                case 'h':
                        run_usage(stdout);
                        return 0;
                default:
                        run_usage(stderr);
                        return CELLA_EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                log_error("run: missing APP_DIR; see 'cella run --help'");
                return CELLA_EXIT_USAGE;
        }
        o.app_dir = argv[optind++];
        if (optind < argc && strcmp(argv[optind], "--") == 0)
                optind++;
        o.extra_args = argv + optind;
        return supervisor_run(&o);
}
