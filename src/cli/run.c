/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella run and cella boot: option parsing; the work is supervisor_run() and
 * supervisor_boot(). Both embed the kernel, so they share its options.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "cli/cli.h"
#include "policy/capability.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "cli/run-client.h"
#include "supervisor/run.h"
#include "supervisor/state.h"

enum {
        ARG_STATE_DIR = 0x100,
        ARG_JSON_STATUS,
        ARG_UID_RANGE,
        ARG_CGROUP_MODE,
        ARG_NO_PROMPT,
        ARG_ROOT,
        ARG_RAW_OUTPUT,
        ARG_EMBEDDED,
};

/* --embedded: the kernel in this process even when a cellad runs. kernel_only: an
 * option only an embedded kernel honours was given (-t, --root,
 * --uid-range, --cgroup-mode), so this run embeds too (docs/cli.md "Through
 * cellad"). */
static bool embedded, kernel_only;

/* cella run's own: -t. In KERNEL_OPTIONS so one getopt table serves both; cella
 * boot's optstring has no 't', and it refuses --tty itself. */

#define KERNEL_OPTIONS                                                                             \
        {"state-dir", required_argument, NULL, ARG_STATE_DIR},                                     \
                {"json-status", required_argument, NULL, ARG_JSON_STATUS},                         \
                {"uid-range", required_argument, NULL, ARG_UID_RANGE},                             \
                {"cgroup-mode", required_argument, NULL, ARG_CGROUP_MODE},                         \
                {"no-prompt", no_argument, NULL, ARG_NO_PROMPT},                                   \
                {"root", required_argument, NULL, ARG_ROOT},                                       \
                {"raw-output", no_argument, NULL, ARG_RAW_OUTPUT},                                 \
                {"embedded", no_argument, NULL, ARG_EMBEDDED}, {"tty", no_argument, NULL, 't'},    \
                {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'},             \
        {                                                                                          \
        }

static void kernel_options_usage(FILE *f)
{
        fprintf(f,
                "      --state-dir DIR      state directory (default %s)\n"
                "      --json-status FD     write JSON-lines status records (started, exited,\n"
                "                           failed, notification) to file descriptor FD\n"
                "      --no-prompt          refuse an app's permission requests instead of\n"
                "                           asking on the terminal\n"
                "      --root NAME=PATH     user-file root NAME for fs.open is host folder PATH\n"
                "                           (default <state-dir>/roots/NAME); repeatable\n"
                "      --raw-output         pass the apps' output to a terminal as it is, escape\n"
                "                           sequences included (default: shown inert, as cat -v)\n"
                "      --uid-range BASE:N   host ids for new apps, %u per app (default %u:%u)\n"
                "      --cgroup-mode MODE   auto, v1, v2 or hybrid (default auto)\n"
                "      --embedded           the kernel in this command even when a cellad runs\n"
                "                           for the state directory (else it runs there;\n"
                "                           -t, --root, --uid-range and --cgroup-mode\n"
                "                           imply it)\n"
                "  -v, --verbose            more messages\n"
                "  -h, --help               this text\n",
                cli_default_state_dir(), STATE_IDS_PER_APP, STATE_UID_BASE_DEFAULT,
                STATE_UID_COUNT_DEFAULT);
}

/* NAME=PATH: NAME a root name of the catalogue's grammar, PATH an absolute path of an
 * existing folder. Returns 0, or an exit code after printing what is wrong. */
static int parse_root(const char *arg, char ***roots)
{
        const char *eq = strchr(arg, '=');
        char right[CAPABILITY_RIGHT_MAX];
        CapabilityRight parsed;
        const char *why = NULL;
        struct stat st;

        if (!eq || eq == arg || eq[1] != '/') {
                log_error("--root: expected NAME=/absolute/path, got '%s'", arg);
                return CELLA_EXIT_USAGE;
        }
        if (snprintf(right, sizeof right, "fs.read:%.*s", (int)(eq - arg), arg) >=
                    (int)sizeof right ||
            capability_right_parse(right, &parsed, &why) < 0) {
                log_error("--root: '%.*s' is not a root name: %s", (int)(eq - arg), arg,
                          why ?: "too long");
                return CELLA_EXIT_USAGE;
        }
        /* Checked now, not at the app's first fs.* call: a typo is the user's to fix. */
        if (stat(eq + 1, &st) < 0) {
                log_error_errno(-errno, "--root %s: %s: %m", arg, eq + 1);
                return CELLA_EXIT_USAGE;
        }
        if (!S_ISDIR(st.st_mode)) {
                log_error("--root %s: %s is not a directory", arg, eq + 1);
                return CELLA_EXIT_USAGE;
        }
        if (strv_extend(roots, arg) < 0)
                return CELLA_EXIT_INTERNAL;
        return 0;
}

/* Handles option c of KERNEL_OPTIONS. Returns 0, or an exit code; -1 if c is not one. */
static int kernel_option(int c, const char *arg, KernelOptions *k)
{
        unsigned long long v, n;
        int code;

        if (c == ARG_UID_RANGE || c == ARG_CGROUP_MODE || c == ARG_ROOT || c == 't')
                kernel_only = true;
        switch (c) {
        case ARG_EMBEDDED:
                embedded = true;
                return 0;
        case ARG_STATE_DIR:
                return cli_state_dir_arg(arg, &k->state_dir);
        case ARG_JSON_STATUS:
                if (cli_parse_uint(arg, 1 << 20, &v) < 0 || fcntl((int)v, F_GETFD) < 0) {
                        log_error("--json-status: '%s' is not an open file descriptor", arg);
                        return CELLA_EXIT_USAGE;
                }
                k->json_status_fd = (int)v;
                return 0;
        case ARG_UID_RANGE: {
                _cleanup_free_ char *copy = strdup(arg);
                char *colon = copy ? strchr(copy, ':') : NULL;

                if (!colon) {
                        log_error("--uid-range: expected BASE:COUNT, got '%s'", arg);
                        return CELLA_EXIT_USAGE;
                }
                *colon = 0;
                if (cli_parse_uint(copy, 0xFFFFFFFEull, &v) < 0 || v == 0 ||
                    cli_parse_uint(colon + 1, 0xFFFFFFFEull, &n) < 0 || n == 0 ||
                    n % STATE_IDS_PER_APP != 0 || v + n > 0xFFFFFFFEull) {
                        log_error("--uid-range: expected BASE:COUNT with BASE > 0, COUNT a "
                                  "multiple of %u (host ids per app) and BASE+COUNT at most "
                                  "4294967294, got '%s'",
                                  STATE_IDS_PER_APP, arg);
                        return CELLA_EXIT_USAGE;
                }
                k->uid_base = (uid_t)v;
                k->uid_count = (uint32_t)n;
                return 0;
        }
        case ARG_CGROUP_MODE:
                if (strcmp(arg, "auto") == 0)
                        k->cgroup_mode = CGROUP_MODE_AUTO;
                else if (strcmp(arg, "v1") == 0)
                        k->cgroup_mode = CGROUP_MODE_V1;
                else if (strcmp(arg, "v2") == 0)
                        k->cgroup_mode = CGROUP_MODE_V2;
                else if (strcmp(arg, "hybrid") == 0)
                        k->cgroup_mode = CGROUP_MODE_HYBRID;
                else {
                        log_error("--cgroup-mode: expected auto, v1, v2 or hybrid, got '%s'", arg);
                        return CELLA_EXIT_USAGE;
                }
                return 0;
        case ARG_NO_PROMPT:
                k->no_prompt = true;
                return 0;
        case ARG_ROOT:
                code = parse_root(arg, &k->roots);
                return code;
        case ARG_RAW_OUTPUT:
                k->raw_output = true;
                return 0;
        case 't':
                k->tty = true;
                return 0;
        case 'v':
                log_verbose = 1;
                return 0;
        default:
                return -1;
        }
}

/*
 * Parses argv's options (getopt optstring: "+vh" for run, which stops at the app's
 * own args, "vh" for boot) into *k, with the defaults first. usage prints the
 * command's help. Returns true when the command goes on (optind at the first
 * operand); false when it is done, with *ret_exit: 0 after printing the help on
 * request, else the exit code of what was wrong (printed).
 */
static bool kernel_options_parse(int argc, char **argv, const char *optstring,
                                 void (*usage)(FILE *f), KernelOptions *k, int *ret_exit)
{
        static const struct option options[] = {KERNEL_OPTIONS};
        int c;

        *k = (KernelOptions){
                .state_dir = cli_default_state_dir(),
                .json_status_fd = -1,
                .uid_base = STATE_UID_BASE_DEFAULT,
                .uid_count = STATE_UID_COUNT_DEFAULT,
                .exit_code = cella_exit_code,
        };
        *ret_exit = 0;
        while ((c = getopt_long(argc, argv, optstring, options, NULL)) >= 0) {
                if (c == 'h') {
                        usage(stdout);
                        return false;
                }
                *ret_exit = kernel_option(c, optarg, k);
                if (*ret_exit < 0) {
                        usage(stderr);
                        *ret_exit = CELLA_EXIT_USAGE;
                }
                if (*ret_exit != 0)
                        return false;
        }
        return true;
}

/* A failure of the command line itself (code: CELLA_EXIT_USAGE, or
 * CELLA_EXIT_INTERNAL out of memory), as the kernel's are told. */
static SupervisorError cli_failure(int code)
{
        return (SupervisorError){.step = code == CELLA_EXIT_USAGE ? SUPERVISOR_STEP_USAGE
                                                                  : SUPERVISOR_STEP_INTERNAL,
                                 .error = code == CELLA_EXIT_USAGE ? EINVAL : ENOMEM};
}

/* cella run's and cella boot's exit code for the kernel's result r (>= 0: the exit
 * status; else a negative errno with *err), after writing the "failed" record no
 * other record told (supervisor_report_failure()). */
static int kernel_exit(const KernelOptions *k, int r, const SupervisorError *err)
{
        int code = r >= 0 ? r : cella_exit_code(err);

        supervisor_report_failure(k->json_status_fd, r >= 0 ? &(SupervisorError){} : err, code);
        return code;
}

static void run_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella run [OPTIONS] APP_DIR [-- ARGS...]\n"
                "\n"
                "Runs the app in APP_DIR (a folder with a manifest.json) in a new sandbox,\n"
                "serves its calls to the kernel, streams its stdout and stderr, and exits\n"
                "with its status.\n"
                "\n"
                "Options:\n"
                "  -t, --tty                give the app a terminal of its own (a pty), relayed\n"
                "                           to ours with its output shown as --raw-output says\n");
        kernel_options_usage(f);
        fprintf(f, "\n"
                   "Exit status: the app's; 126 entry not executable; 127 entry not found;\n"
                   "128+N app killed by signal N; 240-255 cella's own failures (docs/cli.md).\n");
}

/* Whether this run goes through the state directory's cellad: it answers, and
 * nothing asks for an embedded kernel. */
static bool through_daemon(const KernelOptions *k)
{
        return !embedded && !kernel_only && cli_daemon_running(k->state_dir);
}

/* The folder cellad passes as /proc/self/fd/N (run-methods.c), by its canonical
 * path, so that the messages name the folder, not the fd (*keep holds it). */
static const char *folder_of_fd(const char *dir, char **keep)
{
        if (strncmp(dir, "/proc/self/fd/", 14) != 0)
                return dir;
        *keep = realpath(dir, NULL);
        return *keep ?: dir;
}

int cli_run(int argc, char **argv)
{
        _cleanup_free_ char *real = NULL;
        RunOptions o = {};
        SupervisorError err = {};
        int code, r = 0;

        /* "+": stop at the first non-option, so the app's own args are left alone. */
        if (!kernel_options_parse(argc, argv, "+tvh", run_usage, &o.k, &code)) {
                err = cli_failure(code);
                r = code != 0 ? -err.error : 0;
        } else if (optind >= argc) {
                log_error("run: missing APP_DIR; see 'cella run --help'");
                err = cli_failure(CELLA_EXIT_USAGE);
                r = -err.error;
        } else {
                o.app_dir = argv[optind++];
                if (optind < argc && strcmp(argv[optind], "--") == 0)
                        optind++;
                o.extra_args = argv + optind;
                if (through_daemon(&o.k)) {
                        code = cli_run_through_daemon("run", &o.k, o.app_dir, o.extra_args, false);
                        strv_free(o.k.roots);
                        return code;
                }
                o.app_dir = folder_of_fd(o.app_dir, &real);
                r = supervisor_run(&o, &err);
        }
        code = kernel_exit(&o.k, r, &err);
        strv_free(o.k.roots);
        return code;
}

static void boot_usage(FILE *f)
{
        fprintf(f, "Usage: cella boot [OPTIONS] DIR\n"
                   "\n"
                   "Starts every app folder in DIR (a folder with a manifest.json) under one\n"
                   "kernel: services before the apps that depend on them, restarted by their\n"
                   "restart policy, each app's output in its own log ('cella logs APP').\n"
                   "Ends when every app of kind \"app\" has exited (the services are then\n"
                   "stopped), or on Ctrl-C (a second Ctrl-C kills at once).\n"
                   "\n"
                   "Options:\n");
        kernel_options_usage(f);
        fprintf(f, "\n"
                   "Exit status: 0 every app exited with status 0 or was stopped; 1 an app\n"
                   "failed or exited with another status; 240-254 cella's own failures.\n");
}

int cli_boot(int argc, char **argv)
{
        _cleanup_free_ char *real = NULL;
        BootOptions o = {};
        SupervisorError err = {};
        int code, r = 0;

        if (!kernel_options_parse(argc, argv, "vh", boot_usage, &o.k, &code)) {
                err = cli_failure(code);
                r = code != 0 ? -err.error : 0;
        } else if (o.k.tty) {
                log_error("boot: --tty is for 'cella run': booted apps write to their logs");
                err = cli_failure(CELLA_EXIT_USAGE);
                r = -err.error;
        } else if (optind != argc - 1) {
                log_error("boot: expected one DIR; see 'cella boot --help'");
                err = cli_failure(CELLA_EXIT_USAGE);
                r = -err.error;
        } else {
                o.dir = argv[optind];
                if (through_daemon(&o.k)) {
                        code = cli_run_through_daemon("boot", &o.k, o.dir, NULL, true);
                        strv_free(o.k.roots);
                        return code;
                }
                o.dir = folder_of_fd(o.dir, &real);
                r = supervisor_boot(&o, &err);
        }
        code = kernel_exit(&o.k, r, &err);
        strv_free(o.k.roots);
        return code;
}
