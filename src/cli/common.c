/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Checks and openers every subcommand shares, each printing its own error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/termsafe.h"
#include "cli/cli.h"
#include "policy/grants.h"
#include "policy/manifest.h"
#include "supervisor/control.h"
#include "cli/exit-codes.h"

int cli_state_dir_arg(const char *arg, const char **state_dir)
{
        if (!arg || !*arg) {
                log_error("--state-dir: expected a directory");
                return CELLA_EXIT_USAGE;
        }
        *state_dir = arg;
        return 0;
}

int cli_common_option(int c, const char *arg, const char **state_dir, bool *json,
                      void (*usage)(FILE *f))
{
        switch (c) {
        case CLI_ARG_STATE_DIR:
                return cli_state_dir_arg(arg, state_dir) ?: CLI_OPTION_NEXT;
        case CLI_ARG_JSON:
                if (!json)
                        break;
                *json = true;
                return CLI_OPTION_NEXT;
        case 'h':
                usage(stdout);
                return 0;
        }
        usage(stderr);
        return CELLA_EXIT_USAGE;
}

const char *cli_safe_field(json_t *v, char *buf, size_t size)
{
        buf[0] = 0;
        if (json_is_string(v))
                termsafe_field(json_string_value(v), size - 4, buf, size);
        return buf;
}

bool cli_reply_error(const char *what, const char *source, json_t *reply, bool json)
{
        json_t *p = control_reply_parameters(reply);
        char entry[512], key[160], msg[1024], name[128];

        if (!control_reply_error_name(reply))
                return false;
        cli_safe_field(json_object_get(p, "entry"), entry, sizeof entry);
        cli_safe_field(json_object_get(p, "key"), key, sizeof key);
        cli_safe_field(json_object_get(p, "message"), msg, sizeof msg);
        if (!msg[0])
                snprintf(msg, sizeof msg, "%s",
                         cli_safe_field(json_object_get(reply, "error"), name, sizeof name));
        log_error("%s%s%s: %s%s%s%s%s", what, source ? " " : "", source ?: "", entry,
                  entry[0] ? ": " : "", key, key[0] ? ": " : "", msg);
        if (json)
                (void)cli_print_json(reply);
        return true;
}

int cli_print_json(json_t *obj)
{
        if (!obj || json_dumpf(obj, stdout, JSON_COMPACT) < 0) {
                log_error("out of memory");
                return CELLA_EXIT_INTERNAL;
        }
        putchar('\n');
        return 0;
}

int cli_app_id_arg(const char *app)
{
        if (!manifest_id_is_valid(app)) {
                log_error("'%s' is not an app id (reverse-DNS, e.g. org.example.notes)", app);
                return CELLA_EXIT_USAGE;
        }
        return 0;
}

void cli_state_dir_unwritable(const char *state_dir, int error)
{
        if (error == -EROFS)
                log_error("the state directory %s is on a read-only file system: cella keeps its "
                          "grants and app records there; pass a writable --state-dir (or "
                          "CELLA_STATE_DIR)",
                          state_dir);
        else if (geteuid() != 0)
                /* Not necessarily root's: a missing $XDG_STATE_HOME's parent, say. What
                 * matters is that the kernels, which need root, use root's. */
                log_error_errno(error,
                                "the state directory %s cannot be written (%m): cella's kernels "
                                "run as root, with their state in /var/lib/cella; run this as "
                                "root, or pass a --state-dir you can write",
                                state_dir);
        else
                log_error_errno(error, "the state directory %s cannot be written (%m)", state_dir);
}

int cli_grants_open(const char *state_dir, Grants **ret)
{
        int r = grants_open(state_dir, ret);

        if (r == -EROFS || r == -EACCES || (r == -ENOENT && geteuid() != 0)) {
                cli_state_dir_unwritable(state_dir, r);
                return CELLA_EXIT_STATE;
        }
        if (r == -ENOENT) /* its parent: state_dir_open() named it */
                return CELLA_EXIT_STATE;
        if (r < 0) {
                log_error_errno(r, "cannot open %s/" GRANTS_DB_FILE ": %m", state_dir);
                return CELLA_EXIT_STATE;
        }
        return 0;
}

int cli_grants_load(const char *state_dir, const char *app_dir, const char *app, Grants **ret,
                    char ***ret_requested, bool *ret_signed)
{
        int code, r;

        if ((code = cli_grants_open(state_dir, ret)) != 0)
                return code;
        if (app_dir && (code = cli_policy_install(*ret, state_dir, app_dir, app)) != 0)
                return code;
        r = grants_requested(*ret, app, ret_requested, ret_signed);
        if (r == -ENOENT) {
                log_error("%s is not installed in %s: pass --app-dir DIR", app, state_dir);
                return 1;
        }
        if (r < 0) {
                log_error_errno(r, "cannot read %s/" GRANTS_DB_FILE ": %m", state_dir);
                return CELLA_EXIT_STATE;
        }
        return 0;
}

int cli_parse_uint(const char *s, unsigned long long max, unsigned long long *ret)
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

bool cli_parse_common_options(int argc, char **argv, void (*usage)(FILE *f), const char **state_dir,
                              bool *json, int *ret_exit)
{
        static const struct option with_json[] = {
                {"state-dir", required_argument, NULL, CLI_ARG_STATE_DIR},
                {"json", no_argument, NULL, CLI_ARG_JSON},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        static const struct option without_json[] = {
                {"state-dir", required_argument, NULL, CLI_ARG_STATE_DIR},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        int c;

        *ret_exit = 0;
        *state_dir = cli_default_state_dir();
        while ((c = getopt_long(argc, argv, "h", json ? with_json : without_json, NULL)) >= 0) {
                int code = cli_common_option(c, optarg, state_dir, json, usage);

                if (code >= 0) {
                        *ret_exit = code;
                        return false;
                }
        }
        return true;
}

bool cli_parse_state_dir_only(int argc, char **argv, void (*usage)(FILE *f), const char **state_dir,
                              int *ret_exit)
{
        return cli_parse_common_options(argc, argv, usage, state_dir, NULL, ret_exit);
}

typedef struct Collect {
        const char *cmd, *key, *what, *state_dir;
        json_t *all;
        json_t *mute; /* a record per live kernel that did not answer */
        int error;    /* -ENOMEM while recording one */
} Collect;

/* control_ask_kernels()'s reply callback: appends a copy of each object in the array
 * parameters[key] of the reply, with "kernel_pid" added. An error reply, or a reply
 * without it, is a warning. */
static int collect_records(pid_t pid, json_t *reply, void *ud)
{
        Collect *c = ud;
        json_t *records = json_object_get(control_reply_parameters(reply), c->key), *rec;
        size_t i;

        if (control_reply_error_name(reply) || !json_is_array(records)) {
                char safe[256];

                if (control_reply_error_name(reply))
                        termsafe_field(control_reply_message(reply), 200, safe, sizeof safe);
                log_warning("kernel %d did not give its %s: %s", (int)pid, c->what,
                            control_reply_error_name(reply) ? safe : "bad reply");
                return 0;
        }
        json_array_foreach(records, i, rec)
        {
                json_t *copy;

                if (!json_is_object(rec))
                        continue;
                copy = json_deep_copy(rec);
                if (!copy || json_object_set_new(copy, "kernel_pid", json_integer(pid)) < 0 ||
                    json_array_append_new(c->all, copy) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* control_ask_kernels()'s mute callback: a warning naming the kernel and a record
 * of it in c->mute. */
static void collect_mute(pid_t pid, int error, void *ud)
{
        Collect *c = ud;
        char why[96];
        json_t *rec;

        if (error == -ETIMEDOUT)
                snprintf(why, sizeof why, "did not answer within %u s",
                         CONTROL_CLIENT_TIMEOUT_MS / 1000);
        else if (error == -EAGAIN)
                snprintf(why, sizeof why, "did not accept the connection (too busy)");
        else
                snprintf(why, sizeof why, "gave no answer (%s)", strerror(-error));
        log_warning("%s: kernel %d on %s %s; its %s are not listed", c->cmd, (int)pid, c->state_dir,
                    why, c->what);
        rec = json_pack("{s:i, s:s, s:s, s:s}", "kernel_pid", (int)pid, "state", "not-answering",
                        "state_dir", c->state_dir, "error", why);
        if (!rec || json_array_append_new(c->mute, rec) < 0)
                c->error = -ENOMEM;
}

int cli_ask_kernels_all(const char *cmd, const char *state_dir, const char *method, json_t *params,
                        const char *key, const char *what, json_t **ret, json_t **ret_mute)
{
        Collect c = {.cmd = cmd,
                     .key = key,
                     .what = what,
                     .state_dir = state_dir,
                     .all = json_array(),
                     .mute = json_array()};
        int r;

        if (!c.all || !c.mute) {
                json_decref(c.all);
                json_decref(c.mute);
                log_error_errno(-ENOMEM, "%s: %m", cmd);
                return CELLA_EXIT_INTERNAL;
        }
        r = control_ask_kernels(state_dir, method, params, CONTROL_CLIENT_TIMEOUT_MS,
                                collect_records, collect_mute, &c);
        if (r >= 0 && c.error < 0)
                r = c.error;
        if (r < 0)
                json_decref(c.mute);
        if (r == -EACCES || r == -EPERM) {
                log_error("cannot read %s/" CONTROL_DIR ": permission denied (cella %s needs "
                          "the user the kernels run as: root)",
                          state_dir, cmd);
                json_decref(c.all);
                return CELLA_EXIT_STATE;
        }
        if (r < 0) {
                log_error_errno(r, "cannot ask the kernels in %s/" CONTROL_DIR ": %m", state_dir);
                json_decref(c.all);
                return r == -ENOMEM ? CELLA_EXIT_INTERNAL : CELLA_EXIT_STATE;
        }
        *ret = c.all;
        if (ret_mute)
                *ret_mute = c.mute;
        else
                json_decref(c.mute);
        return 0;
}

int cli_ask_kernels(const char *cmd, const char *state_dir, const char *method, json_t *params,
                    const char *key, const char *what, json_t **ret)
{
        return cli_ask_kernels_all(cmd, state_dir, method, params, key, what, ret, NULL);
}

const char *cli_safe_str(json_t *v, char *buf, size_t size)
{
        return termsafe_token(json_string_value(v), buf, size);
}

const char *cli_format_bytes(int64_t v, char *buf, size_t size)
{
        static const char units[] = "KMGTP";
        double x = (double)v;
        int u = -1;

        if (v < 0) {
                snprintf(buf, size, "-");
                return buf;
        }
        while (x >= 1024 && u < 4) {
                x /= 1024;
                u++;
        }
        if (u < 0)
                snprintf(buf, size, "%.0fB", x);
        else
                snprintf(buf, size, x < 10 ? "%.1f%c" : "%.0f%c", x, units[u]);
        return buf;
}

const char *cli_format_json_bytes(json_t *v, char *buf, size_t size)
{
        return cli_format_bytes(json_is_integer(v) ? (int64_t)json_integer_value(v) : -1, buf,
                                size);
}
