/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cella: the command-line front end. One file per subcommand behind this table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/suggest.h"
#include "cli/cli.h"
#include "config.h"
#include "cli/exit-codes.h"

static const CliCommand commands[] = {
        {"run", "run one app in a sandbox and wait for it", cli_run},
        {"boot", "start every app in a folder, services first, and supervise them", cli_boot},
        {"grant", "grant a right the app's manifest requests", cli_grant},
        {"revoke", "revoke an app's grants within a right", cli_revoke},
        {"forget", "remove an installed app: its data, grants and the id's binding", cli_forget},
        {"permissions", "list an app's requested rights, grants and last gesture", cli_permissions},
        {"gesture", "record a user gesture for an app (camera, microphone)", cli_gesture},
        {"sign", "make keys, sign an app folder or bundle, verify a signature", cli_sign},
        {"bundle", "write an app folder as one bundle file, for cella install", cli_bundle},
        {"install", "install an app folder or bundle into cellad's store", cli_install},
        {"update", "replace an installed app with a newer version by the same signer", cli_update},
        {"remove", "remove an installed app (and its data, unless --keep-data)", cli_remove},
        {"list", "list the apps installed in cellad's store", cli_list},
        {"clear-data", "empty an installed app's /data", cli_clear_data},
        {"audit", "list the audit log's records, or check its hash chain", cli_audit},
        {"ps", "list the apps of every running cella kernel", cli_ps},
        {"stop", "stop a running app (SIGTERM, then SIGKILL), in whichever kernel runs it",
         cli_stop},
        {"logs", "print an app's output log (cella boot), or follow it", cli_logs},
        {"stats", "show the scheduler statistics of the running Lua hosts", cli_stats},
        {"start", "start an installed app (cellad), in the foreground or --background", cli_start},
        {"restart", "stop an app and start it again (cellad)", cli_restart},
        {"freeze", "freeze an app: its processes stop, its memory is kept (cellad)", cli_freeze},
        {"thaw", "thaw a frozen app (cellad)", cli_thaw},
        {"kill", "send a signal to an app, SIGKILL by default (cellad)", cli_kill},
        {"foreground", "make an app the foreground app (cellad)", cli_foreground},
        {"background", "move an app to the background (cellad)", cli_background},
        {"inspect", "show an app's state, pids, cgroup figures, grants, last exit (cellad)",
         cli_inspect},
        {"events", "lifecycle, permission, memory and kill events, as they happen (cellad)",
         cli_events},
        {"exec", "run a command inside a running app's sandbox, as confined as it (cellad, root)",
         cli_exec},
        {"top", "a live table of the apps by CPU and memory, refreshed like top(1)", cli_top},
        {"net", "list the app networks (net.group) and their members' addresses", cli_net},
        {"memory",
         "the memory manager's figures, level and recent actions; or one action by hand (cellad)",
         cli_memory},
        {"port", "forward a host port into a running app, remove or list forwards (cellad)",
         cli_port},
};

static void usage(FILE *f)
{
        fprintf(f, "Usage: cella [--version] [--help] COMMAND [ARGS...]\n"
                   "\n"
                   "cella runs untrusted apps, each in its own sandbox.\n"
                   "\n"
                   "Commands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
        fprintf(f, "\nRun 'cella COMMAND --help' for a command's options. "
                   "Exit codes are listed in docs/cli.md.\n");
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return CELLA_EXIT_USAGE;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
            strcmp(argv[1], "help") == 0) {
                usage(stdout);
                return 0;
        }
        if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
                printf("cella %s\n", CELLA_VERSION);
                return 0;
        }
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(argv[1], commands[i].name) == 0)
                        return commands[i].run(argc - 1, argv + 1);
        {
                const char *names[sizeof(commands) / sizeof(commands[0])], *near;

                for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                        names[i] = commands[i].name;
                near = suggest_nearest(argv[1], strlen(argv[1]), names,
                                       sizeof(commands) / sizeof(commands[0]));
                if (near)
                        log_error("unknown command '%s'; did you mean 'cella %s'? (see 'cella "
                                  "--help')",
                                  argv[1], near);
                else
                        log_error("unknown command '%s'; see 'cella --help'", argv[1]);
        }
        return CELLA_EXIT_USAGE;
}
