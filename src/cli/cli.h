/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "base/statedir.h"

/* One subcommand: argv[0] is its name; returns the process exit code. */
typedef struct CliCommand {
        const char *name;
        const char *summary; /* one line for `cella --help` */
        int (*run)(int argc, char **argv);
} CliCommand;

int cli_run(int argc, char **argv);
int cli_boot(int argc, char **argv);
int cli_grant(int argc, char **argv);
int cli_revoke(int argc, char **argv);
int cli_forget(int argc, char **argv);
int cli_permissions(int argc, char **argv);
int cli_gesture(int argc, char **argv);
int cli_sign(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_ps(int argc, char **argv);
int cli_logs(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_net(int argc, char **argv);
int cli_stop(int argc, char **argv);
int cli_bundle(int argc, char **argv);
int cli_install(int argc, char **argv);
int cli_update(int argc, char **argv);
int cli_remove(int argc, char **argv);
int cli_clear_data(int argc, char **argv);
int cli_list(int argc, char **argv);

/* install.c: `cella install` (update false) and `cella update` (true). */
int cli_install_or_update(int argc, char **argv, bool update);

/*
 * An error reply of cellad (a store command's): when reply is one, prints
 * "<what> <source>: [<entry>: ][<key>: ]<message>" on stderr, each part made safe
 * for the terminal, and with json the whole reply as one line on stdout (what
 * --json promises: {"error": NAME, "parameters": {...}}); returns true. Returns
 * false (nothing printed) for a reply that is not an error. source may be NULL.
 * In common.c.
 */
bool cli_reply_error(const char *what, const char *source, json_t *reply, bool json);

/* Prints obj as one line of JSON on stdout. Returns 0 or CELLA_EXIT_INTERNAL. */
int cli_print_json(json_t *obj);

/* The string v (of a daemon's reply: another process's text) fit for one line of a
 * terminal (termsafe_field), in buf (size > 8); "" if v is not a string. In common.c. */
const char *cli_safe_field(json_t *v, char *buf, size_t size);

/*
 * For install and update (bundle.c): an fd (O_CLOEXEC, at offset 0) of a bundle of
 * path, an app folder (written as a bundle into a sealed memfd: store_bundle_write)
 * or a bundle file (copied into a sealed memfd); *ret_is_dir (may be NULL) says which. The
 * daemon reads the fd: it never opens a path a client names. Prints what went wrong
 * and, if ret_error is not NULL, makes it *ret_error, an object shaped as cellad's
 * error replies ({"error": "org.cella.InvalidBundle" or "org.cella.Failed",
 * "parameters": {"message", "errno", "entry"?, "key"?}}) for --json; returns 0 or an
 * exit code (1, CELLA_EXIT_INTERNAL).
 */
int cli_bundle_fd(const char *path, int *ret_fd, bool *ret_is_dir, json_t **ret_error);

/* Prints "<what> <source>: [<entry>: ][<key>: ]<message>" for a store error r with
 * err (bundle.c). */
struct StoreError;
void cli_store_error(const char *what, const char *source, int r, const struct StoreError *err);
int cli_top(int argc, char **argv);
int cli_exec(int argc, char **argv);
/* app-op.c: one app through cellad */
int cli_start(int argc, char **argv);
int cli_restart(int argc, char **argv);
int cli_freeze(int argc, char **argv);
/* cella memory ACTION APP: org.cella.MemoryAction (memory-action.c). */
int cli_memory(int argc, char **argv);
int cli_port(int argc, char **argv);
/* cella memory [APP] (memory-show.c): the report of org.cella.Memory. */
int cli_memory_show(int argc, char **argv);
/* The level of an org.cella.Memory reply r as one line of text into buf: "level
 * moderate (the manager's)", with "degraded" when the manager says so. */
void cli_memory_level_line(json_t *r, char *buf, size_t size);
int cli_thaw(int argc, char **argv);
int cli_kill(int argc, char **argv);
int cli_foreground(int argc, char **argv);
int cli_background(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_events(int argc, char **argv);

/* ps-watch.c: appends to apps a record {"id", "state": "installed", "running":
 * false, "pid": 0, "version"} for each app installed in state_dir's store
 * (apps/<id>/current) that apps does not list. Returns 0 or -errno. */
int cli_ps_add_installed(const char *state_dir, json_t *apps);
/* cella ps --watch: a new snapshot (print(apps), or a JSON array a line) on every
 * change: cellad's stream when it runs, else every kernel asked each second. Runs
 * until interrupted; returns an exit code on failure. */
int cli_ps_watch(const char *state_dir, bool all, bool json, void (*print)(json_t *apps));

/*
 * After a grant, revoke or gesture is committed to grants.db: appends one "grant"
 * audit record per right (fields what = "granted"/"revoked"/"gesture", right,
 * one_time, by = "cli"; rights NULL: one record without a right), then sends
 * org.cella.GrantsChanged {"app": app} to every kernel running on state_dir (none is
 * fine). A failure of either is a warning: the change itself stands. In grant.c.
 */
void cli_grants_changed(const char *state_dir, const char *app, const char *what,
                        char *const *rights, bool one_time);

/*
 * For `cella grant` and `cella permissions --app-dir`: loads app_dir's manifest (its
 * id must be app_id), verifies app_dir/SIGNATURE against state_dir's trusted keys,
 * and records both with grants_install(). Prints what went wrong; returns 0 or an
 * exit code (CELLA_EXIT_MANIFEST, CELLA_EXIT_USAGE, CELLA_EXIT_STATE). In grant.c.
 */
struct Grants;
int cli_policy_install(struct Grants *g, const char *state_dir, const char *app_dir,
                       const char *app_id);

/*
 * Shared argument checks and openers (common.c). Each prints its error and returns 0
 * or the exit code to return: cli_state_dir_arg() sets *state_dir from a --state-dir
 * argument (CELLA_EXIT_USAGE if empty); cli_app_id_arg() checks an APP argument is an
 * app id (CELLA_EXIT_USAGE); cli_grants_open() opens grants.db (CELLA_EXIT_STATE).
 */
int cli_state_dir_arg(const char *arg, const char **state_dir);

/* Parses s as a decimal number of at most max (digits only: no sign, no spaces).
 * Returns 0 and *ret, -EINVAL (not a number), or -ERANGE (past max). */
int cli_parse_uint(const char *s, unsigned long long max, unsigned long long *ret);

/* A string from a kernel's reply, fit for a terminal: termsafe_token() (its
 * [A-Za-z0-9._-] kept, anything else '?', cut to size - 1 bytes, in buf); "-" if
 * v is not a string. */
const char *cli_safe_str(json_t *v, char *buf, size_t size);

/*
 * Calls method with params (borrowed; NULL: {}) on every kernel on state_dir, all
 * at once (control_ask_kernels(), CONTROL_CLIENT_TIMEOUT_MS for all together), and
 * collects the objects of each reply's array parameters[key] into *ret (a new
 * JSON array), each with "kernel_pid" added; a kernel whose reply is an error or
 * lacks the array is a warning naming what ("apps", "stats"). A live kernel that did not answer is
 * never left out silently: a warning names its pid and state_dir ("kernel 1234 on
 * /var/lib/cella did not answer within 5 s; its apps are not listed"), and *ret_mute
 * (if not NULL) is a new JSON array of one record per such kernel:
 * {"kernel_pid": N, "state": "not-answering", "state_dir": S, "error": "..."}.
 * cmd names the command in messages. Returns 0, or an exit code after a message:
 * CELLA_EXIT_STATE (run/ unreadable, not root), CELLA_EXIT_INTERNAL (out of memory).
 */
int cli_ask_kernels_all(const char *cmd, const char *state_dir, const char *method, json_t *params,
                        const char *key, const char *what, json_t **ret, json_t **ret_mute);

/* cli_ask_kernels_all() without ret_mute (the warnings are still printed). */
int cli_ask_kernels(const char *cmd, const char *state_dir, const char *method, json_t *params,
                    const char *key, const char *what, json_t **ret);

/* The getopt_long() values of the options cli_common_option() handles; a command's
 * own long-only options start at CLI_ARG_OWN. */
enum {
        CLI_ARG_STATE_DIR = 0x100,
        CLI_ARG_JSON,
        CLI_ARG_OWN,
};

/* cli_common_option()'s "go on parsing". */
#define CLI_OPTION_NEXT (-1)

/*
 * The options the commands share, as the default of their getopt_long() switch:
 * c is getopt_long()'s answer that the command's own cases did not take, arg
 * optarg. --state-dir (CLI_ARG_STATE_DIR) sets *state_dir (cli_state_dir_arg()),
 * --json (CLI_ARG_JSON) sets *json (json NULL: a command without --json), -h/--help
 * prints usage(stdout); anything else (an unknown option, a missing argument, an
 * option the command refuses) prints usage(stderr). Returns CLI_OPTION_NEXT to go
 * on, or the exit code to return now: 0 after --help, CELLA_EXIT_USAGE.
 */
int cli_common_option(int c, const char *arg, const char **state_dir, bool *json,
                      void (*usage)(FILE *f));

/* The options of a command that takes only --state-dir, --json (json not NULL: sets
 * *json) and --help (cli_common_option()): parses them. Returns true when the command
 * goes on (optind at its first operand); false when it is done, with *ret_exit its
 * exit code: 0 after printing the help on request, else CELLA_EXIT_USAGE after
 * printing what was wrong. */
bool cli_parse_common_options(int argc, char **argv, void (*usage)(FILE *f), const char **state_dir,
                              bool *json, int *ret_exit);

/* cli_parse_common_options() without --json (json NULL). */
bool cli_parse_state_dir_only(int argc, char **argv, void (*usage)(FILE *f), const char **state_dir,
                              int *ret_exit);
int cli_app_id_arg(const char *app);
/* Prints why state_dir cannot be written: error -EROFS (a read-only file system),
 * or -EACCES/-EPERM (another user's folder). */
void cli_state_dir_unwritable(const char *state_dir, int error);
int cli_grants_open(const char *state_dir, struct Grants **ret);

/*
 * Opens grants.db (*ret, which the caller frees even on failure), installs app from
 * app_dir first if app_dir is not NULL, and reads its requested rights and whether
 * it is signed. Prints its error; returns 0, 1 (app not installed), or an exit code.
 */
int cli_grants_load(const char *state_dir, const char *app_dir, const char *app,
                    struct Grants **ret, char ***ret_requested, bool *ret_signed);

/*
 * Formats a size for a table, in binary units as ps(1) and top(1) show them: v bytes
 * as "512B", "1.5K", "12M", "3.2G" (one decimal under 10 of a unit, K..P = 1024^1..5);
 * v < 0 (unknown) as "-". Returns buf (size bytes, at least 8 for every value).
 */
const char *cli_format_bytes(int64_t v, char *buf, size_t size);
/* The same for a JSON figure: an integer >= 0 in bytes; anything else (null: unknown
 * or none) as "-". Returns buf. */
const char *cli_format_json_bytes(json_t *v, char *buf, size_t size);

/* The default state directory (what --state-dir overrides): state_dir_default(),
 * the same as cellad's. */
static inline const char *cli_default_state_dir(void)
{
        return state_dir_default();
}
