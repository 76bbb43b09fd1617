/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One subcommand: argv[0] is its name; returns the process exit code. */
typedef struct CliCommand {
        const char *name;
        const char *summary; /* one line for `cella --help` */
        int (*run)(int argc, char **argv);
} CliCommand;

int cli_run(int argc, char **argv);

/* The default state directory: /var/lib/cella as root, else $XDG_STATE_HOME/cella
 * (or ~/.local/state/cella). Returns a static or heap string that lives until exit. */
const char *cli_default_state_dir(void);
