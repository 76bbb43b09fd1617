/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "supervisor/run.h"

/*
 * Runs folder (cella run: an app folder, with extra_args; boot: a folder of app
 * folders) through the cellad of k->state_dir (org.cella.Run, docs/api.md): relays
 * the run's output to ours, passes our SIGINT, SIGTERM and SIGHUP on, and returns
 * the run's exit status, which is what `cella run --embedded` would have returned
 * (docs/cli.md "Exit status"); 1 after an error reply of cellad (printed: "CMD:
 * cellad: NAME: message"), CELLA_EXIT_MANIFEST when the folder cannot be opened,
 * CELLA_EXIT_INTERNAL when cellad goes away before the run's end (printed).
 * cmd is "run" or "boot", for messages.
 */
int cli_run_through_daemon(const char *cmd, const KernelOptions *k, const char *folder,
                           char *const *extra_args, bool boot);

/*
 * `cella exec`: runs argv in the running app's sandbox through cellad
 * (org.cella.Exec, docs/api.md; root only): stdin, stdout and stderr are pipes
 * this process feeds (our stdin with interactive, else an empty one) and relays
 * (rendered inert on a terminal unless raw_output); with tty a pty in the sandbox,
 * relayed as it is, our terminal raw meanwhile (restored on the way out), its window
 * size passed at the start and on SIGWINCH. SIGINT, SIGTERM, SIGHUP and SIGQUIT are
 * passed on to the command (org.cella.ExecSignal).
 * Returns the command's exit status; the error's exit_code (126, 127) or 1 after
 * an error reply (printed), CELLA_EXIT_STATE when refused (not root),
 * CELLA_EXIT_INTERNAL when cellad goes away.
 */
int cli_exec_through_daemon(const char *state_dir, const char *app, char *const *argv,
                            bool raw_output, bool interactive, bool tty);
