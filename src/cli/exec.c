/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella exec ID -- CMD [ARGS...]: a command inside a running app's sandbox, through
 * cellad (org.cella.Exec, docs/api.md; root only, audited), exactly as confined as
 * the app (docs/security.md "cella exec"). Its stdin, stdout and stderr are pipes
 * this command feeds (-i) and relays, or with -t a pty made in the sandbox
 * (run-client.c); the signals a shell sends us are the command's; its exit status is
 * ours.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "cli/run-client.h"
#include "policy/manifest.h"

static void exec_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella exec [OPTIONS] APP -- CMD [ARGS...]\n"
                "\n"
                "Runs CMD inside the running app's sandbox, as confined as the app: its\n"
                "namespaces, cgroup, uid, rlimits and seccomp filter, no capabilities. CMD is\n"
                "a path in the app's jail, or a name in its /usr/bin or /bin. Root only;\n"
                "written to the audit log. Needs the cellad that runs the app.\n"
                "\n"
                "Options:\n"
                "  -i, --interactive        keep stdin open: ours goes to the command (without\n"
                "                           it the command reads an empty stdin)\n"
                "  -t, --tty                a terminal (pty) for the command, inside the\n"
                "                           sandbox (with -i, ours raw meanwhile); its output\n"
                "                           passed to ours as it is (use -it for a shell)\n"
                "      --state-dir DIR      state directory (default %s)\n"
                "      --raw-output         pass the command's output to a terminal as it is\n"
                "                           (default without -t: shown inert, as cat -v)\n"
                "  -h, --help               this text\n"
                "\n"
                "SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to this command are passed on to CMD;\n"
                "if this command goes away, CMD and what it started are killed.\n"
                "\n"
                "Exit status: the command's; 126 not executable; 127 not found in the jail;\n"
                "128+N killed by signal N; 1 refused (no such app, not running); 3 no cellad;\n"
                "240 bad command line; 242 not root; 254 cellad went away.\n",
                cli_default_state_dir());
}

int cli_exec(int argc, char **argv)
{
        enum { ARG_STATE_DIR = 0x100, ARG_RAW };
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"raw-output", no_argument, NULL, ARG_RAW},
                {"interactive", no_argument, NULL, 'i'},
                {"tty", no_argument, NULL, 't'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir(), *app;
        bool raw = false, interactive = false, tty = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "+hit", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        exec_usage(stdout);
                        return 0;
                case ARG_STATE_DIR:
                        r = cli_state_dir_arg(optarg, &state_dir);
                        if (r != 0)
                                return r;
                        break;
                case ARG_RAW:
                        raw = true;
                        break;
                case 'i':
                        interactive = true;
                        break;
                case 't':
                        tty = true;
                        break;
                default:
                        exec_usage(stderr);
                        return CELLA_EXIT_USAGE;
                }
        if (optind >= argc) {
                log_error("exec: missing APP; see 'cella exec --help'");
                return CELLA_EXIT_USAGE;
        }
        app = argv[optind++];
        if (!manifest_id_is_valid(app)) {
                log_error("exec: '%s' is not an app id", app);
                return CELLA_EXIT_USAGE;
        }
        if (optind < argc && strcmp(argv[optind], "--") == 0)
                optind++;
        if (optind >= argc || !argv[optind][0]) {
                log_error("exec: missing CMD after the app; see 'cella exec --help'");
                return CELLA_EXIT_USAGE;
        }
        if (!cli_daemon_running(state_dir))
                return cli_no_daemon("exec", state_dir);
        return cli_exec_through_daemon(state_dir, app, argv + optind, raw, interactive, tty);
}
