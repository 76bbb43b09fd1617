/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The CLI's calls to cellad (docs/api.md): one connection to <state>/cellad.sock,
 * one method, its replies. When no cellad runs for the state directory, a command
 * that needs one says so: "no cellad is running for DIR (start it with 'cellad' or
 * 'systemctl start cellad')", exit CELLA_EXIT_NO_DAEMON (docs/cli.md "Exit status").
 * Both calls below are the same client (daemon-client.c): the same connection, the
 * same messages, the same exit codes for a daemon that is not there or not ours.
 */

#include <jansson.h>
#include <stdbool.h>

/*
 * Calls method with params (stolen; NULL = {}) on the cellad of state_dir; with
 * more, on_reply(parameters, continues, ud) is called with each reply's parameters
 * (borrowed) until the last; without, once. An error reply is printed ("cella CMD:
 * <message>") unless json, when it is printed to stdout as {"error", "parameters"}
 * for scripts, and on_reply is not called for it.
 * Returns 0 (on_reply's negative return stops the call: then 0 too if it was
 * -ECANCELED, the caller's own end), or an exit code after a message:
 * CELLA_EXIT_NO_DAEMON (no cellad), 1 (an error reply: NoSuchApp, AppState,
 * Failed...; or the connection broke mid-call, or a bad reply), CELLA_EXIT_USAGE
 * (InvalidParameter), CELLA_EXIT_STATE (PermissionDenied, or the socket refuses us),
 * CELLA_EXIT_INTERNAL (out of memory).
 */
int cli_daemon_call(const char *cmd, const char *state_dir, const char *method, json_t *params,
                    bool more, bool json, int (*on_reply)(json_t *params, bool continues, void *ud),
                    void *ud);

/*
 * One call of method with params (stolen; NULL = {}) and fds[0..n_fds) (not closed)
 * on the cellad of state_dir, waiting timeout_ms for the reply (0: as long as it
 * takes): the store's commands (install, update, remove, clear-data, list), which
 * print an error reply their own way (cli_reply_error()). Returns 0 and *ret_reply
 * (the whole reply, an error reply too: the caller frees), or an exit code after a
 * message naming cmd, as cli_daemon_call(): CELLA_EXIT_NO_DAEMON, CELLA_EXIT_STATE,
 * 1 (the connection broke: cellad killed mid-install, say), CELLA_EXIT_INTERNAL.
 */
int cli_cellad_call(const char *cmd, const char *state_dir, const char *method, json_t *params,
                    const int *fds, size_t n_fds, unsigned timeout_ms, json_t **ret_reply);

/* Whether a cellad answers on state_dir's socket now (a connect that works). */
bool cli_daemon_running(const char *state_dir);

/*
 * The exit code for cellad's reply (docs/cli.md's table): 0 for a reply that is not an
 * error, CELLA_EXIT_USAGE for org.cella.InvalidParameter, CELLA_EXIT_STATE (242) for
 * org.cella.PermissionDenied, 1 for any other error (a refusal).
 */
int cli_reply_exit_code(const json_t *reply);

/* Prints "CMD: no cellad is running for STATE_DIR (start it with 'cellad' or
 * 'systemctl start cellad')" and returns CELLA_EXIT_NO_DAEMON (3). */
int cli_no_daemon(const char *cmd, const char *state_dir);
