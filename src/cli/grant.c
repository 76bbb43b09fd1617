/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella grant: gives an app a right its manifest requests (docs/capabilities.md).
 *
 * The requested set comes from grants.db, recorded by an install. Until `cella run`
 * records installs, `--app-dir DIR` installs from the folder first: it reads the
 * manifest, verifies DIR/SIGNATURE against the state's trusted keys, and records
 * both (cli_policy_install, shared with `cella permissions`).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "cli/cli.h"
#include "policy/capability.h"
#include "policy/grant-record.h"
#include "policy/grants.h"
#include "policy/manifest.h"
#include "policy/signature.h"
#include "audit/audit.h"
#include "supervisor/control.h"
#include "cli/exit-codes.h"
#include "supervisor/state.h"

enum {
        ARG_STATE_DIR = 0x100,
        ARG_APP_DIR,
        ARG_ONCE,
};

static void grant_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella grant [OPTIONS] APP RIGHT\n"
                "\n"
                "Grants RIGHT (\"name\" or \"name:scope\", docs/capabilities.md) to the app APP.\n"
                "The app's manifest must request it; a scope may be narrower than the one\n"
                "requested. A bare name grants every requested scope of that right.\n"
                "\n"
                "Options:\n"
                "      --once            a one-time grant: used up by the first call it allows\n"
                "      --app-dir DIR     install APP from DIR first (its manifest and signature)\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 granted; 1 refused (not requested, not signed, not installed);\n"
                "240 bad command line; 241 bad manifest; 242 state directory problem.\n",
                cli_default_state_dir());
}

static void print_manifest_error(const ManifestError *e)
{
        if (e->line > 0)
                log_error("%s:%d:%d: %s", e->file, e->line, e->column, e->message);
        else if (e->key[0])
                log_error("%s: %s: %s", e->file, e->key, e->message);
        else
                log_error("%s: %s", e->file, e->message);
}

int cli_policy_install(Grants *g, const char *state_dir, const char *app_dir, const char *app_id)
{
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        char key_id[SIGNATURE_KEY_ID_CHARS + 1];
        const char *bad = NULL, *why = NULL;
        SignatureError serr = {};
        ManifestError merr = {};
        bool signed_ok;
        int r;

        dirfd = open(app_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                log_error_errno(-errno, "cannot open app folder %s: %m", app_dir);
                return CELLA_EXIT_MANIFEST;
        }
        r = manifest_load_at(dirfd, app_dir, &m, &merr);
        if (r < 0) {
                print_manifest_error(&merr);
                return CELLA_EXIT_MANIFEST;
        }
        if (strcmp(m->id, app_id) != 0) {
                log_error("%s holds the app %s, not %s", app_dir, m->id, app_id);
                return CELLA_EXIT_USAGE;
        }
        r = signature_verify(dirfd, state_dir, key_id, &serr);
        signed_ok = r == 0;
        if (r < 0 && r != -ENOENT)
                log_warning("%s%s%s: %s; signature rights are not granted",
                            serr.path[0] == '/' ? "" : app_dir, serr.path[0] == '/' ? "" : "/",
                            serr.path[0] ? serr.path : SIGNATURE_FILE,
                            serr.message ?: strerror(-r));
        /* The id is bound to what first installed it (as `cella run` does): another
         * folder claiming it installs nothing. */
        {
                _cleanup_(state_freep) State *st = NULL;
                StateClaim claim = {}, rec = {};

                r = state_open(state_dir, STATE_UID_BASE_DEFAULT, STATE_UID_COUNT_DEFAULT, &st);
                if (r >= 0)
                        r = state_claim_of_folder(dirfd, signed_ok ? key_id : NULL, &claim);
                if (r >= 0)
                        r = state_app_claim(st, m->id, &claim, grants_now_ms(), &rec);
                if (r == -EEXIST)
                        state_claim_log_conflict(m->id, app_dir, &claim, &rec);
                else if (r == -ENOTUNIQ)
                        state_claim_log_nested(m->id, app_dir, &claim, &rec);
                else if (r < 0)
                        log_error_errno(r, "cannot record who installed %s in %s: %m", app_id,
                                        state_dir);
                state_claim_clear(&claim);
                state_claim_clear(&rec);
                if (r == -EEXIST || r == -ENOTUNIQ)
                        return 1;
                if (r < 0)
                        return CELLA_EXIT_STATE;
        }
        r = grants_install_as(g, m, signed_ok, signed_ok ? key_id : NULL, grants_now_ms(), &bad,
                              &why);
        if (r == -EINVAL && bad) {
                const char *field = "permissions";

                STRV_FOREACH (p, m->exports)
                        if (*p == bad)
                                field = "exports";
                log_error("%s/manifest.json: %s: '%s': %s", app_dir, field, bad,
                          why ?: "not a right");
                return CELLA_EXIT_MANIFEST;
        }
        if (r < 0) {
                log_error_errno(r, "cannot record %s in %s/" GRANTS_DB_FILE ": %m", app_id,
                                state_dir);
                return CELLA_EXIT_STATE;
        }
        return 0;
}

/* The state directory's audit log as a sink of records (grants_grant_recorded()):
 * opened on the first record unless opened already; the first failure ends it. */
typedef struct CliAudit {
        const char *state_dir;
        AuditLog *log;
        int error;
} CliAudit;

static int cli_audit_sink(void *userdata, const char *app, const char *event, json_t *fields)
{
        CliAudit *ca = userdata;
        int r = ca->error;

        if (r >= 0 && !ca->log)
                r = audit_open(ca->state_dir, NULL, &ca->log);
        if (r >= 0)
                r = audit_append(ca->log, app, event, fields);
        ca->error = r < 0 ? r : 0;
        return ca->error;
}

/* Makes ca's records durable, warns if any was lost, closes the log; then tells the
 * kernels running on the state directory that app's grants changed. */
static void cli_audit_done(CliAudit *ca, const char *app)
{
        int r = ca->error;

        if (r >= 0 && ca->log)
                r = audit_sync(ca->log);
        ca->log = audit_close(ca->log);
        if (r < 0)
                log_warning_errno(r,
                                  "%s: the change is made, but no audit record of it could be "
                                  "written to %s/audit: %m",
                                  app, ca->state_dir);

        /* A running kernel re-reads the app's grants now: a revoke closes the app's
         * broker handles that depended on the right at once (docs/design.md section 10). */
        r = control_notify_grants_changed(ca->state_dir, app);
        if (r < 0 && r != -EACCES)
                log_warning_errno(r,
                                  "cannot tell the running kernels in %s/" CONTROL_DIR
                                  ": %m; running apps see the change when they restart",
                                  ca->state_dir);
}

void cli_grants_changed(const char *state_dir, const char *app, const char *what,
                        char *const *rights, bool one_time)
{
        CliAudit ca = {.state_dir = state_dir};
        json_t *f;

        /* The record: same fields as grants_grant_recorded()'s for a grant. */
        ca.error = audit_open(state_dir, NULL, &ca.log);
        for (size_t i = 0; ca.error >= 0 && i < (rights ? strv_length(rights) : 1); i++) {
                if (rights)
                        f = json_pack("{s:s, s:s, s:b, s:s}", "what", what, "right", rights[i],
                                      "one_time", one_time, "by", "cli");
                else
                        f = json_pack("{s:s, s:s}", "what", what, "by", "cli");
                if (f)
                        (void)cli_audit_sink(&ca, app, AUDIT_EVENT_GRANT, f);
                else
                        ca.error = -ENOMEM;
                json_decref(f);
        }
        cli_audit_done(&ca, app);
}

/* Most requested rights a refusal lists (a manifest may request 64). */
#define GRANT_LIST_MAX 8u

/*
 * Says that app does not request right, and what it does request (requested, a strv
 * of the manifest's rights; at most GRANT_LIST_MAX of them, then how many more), so
 * that a mistyped scope shows next to the right one.
 */
static void log_not_requested(const char *app, const char *right, char *const *requested)
{
        char list[1024];
        size_t n = strv_length(requested), o = 0;

        list[0] = 0;
        for (size_t i = 0; i < n && i < GRANT_LIST_MAX && o < sizeof list; i++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s'%s'", i ? ", " : "",
                                      requested[i]);
        if (n > GRANT_LIST_MAX && o < sizeof list)
                snprintf(list + o, sizeof list - o, " and %zu more", n - GRANT_LIST_MAX);
        if (n == 0)
                log_error("%s does not request '%s' in its manifest: it requests no right "
                          "(its manifest's \"permissions\")",
                          app, right);
        else
                log_error("%s does not request '%s' in its manifest; it requests %s (see 'cella "
                          "permissions %s')",
                          app, right, list, app);
}

/* Grants one right; prints why when refused. Returns an exit code. */
static int grant_one(Grants *g, const char *state_dir, const char *app, const char *right,
                     bool once, bool is_signed, char *const *requested)
{
        CliAudit ca = {.state_dir = state_dir};
        CapabilityRight parsed;
        int r, ar;

        r = grants_grant_recorded(g, app, right, once, "cli", grants_now_ms(), cli_audit_sink, &ca,
                                  &ar);
        if (r == 0) {
                printf("granted '%s' to %s%s\n", right, app, once ? " (one time)" : "");
                if (ar < 0)
                        ca.error = ar;
                cli_audit_done(&ca, app);
                return 0;
        }
        if (r == -EPERM) {
                if (capability_right_parse(right, &parsed, NULL) == 0 &&
                    parsed.cap->level == CAPABILITY_SIGNATURE && !is_signed)
                        log_error("'%s' is a signature right: %s's bundle is not signed by a "
                                  "trusted key",
                                  right, app);
                else
                        log_not_requested(app, right, requested);
                return 1;
        }
        if (r == -ENOSPC) {
                log_error("%s already holds %u grants, the most one app may hold", app,
                          GRANTS_PER_APP_MAX);
                return 1;
        }
        log_error_errno(r, "cannot grant '%s' to %s: %m", right, app);
        return CELLA_EXIT_STATE;
}

int cli_grant(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"app-dir", required_argument, NULL, ARG_APP_DIR},
                {"once", no_argument, NULL, ARG_ONCE},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir(), *app_dir = NULL, *app, *right, *why;
        _cleanup_(grants_freep) Grants *g = NULL;
        _cleanup_strv_free_ char **requested = NULL;
        CapabilityRight parsed;
        bool once = false, is_signed = false, name_only = false;
        int c, r, code = 0, n = 0;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_STATE_DIR:
                        if ((code = cli_state_dir_arg(optarg, &state_dir)) != 0)
                                return code;
                        break;
                case ARG_APP_DIR:
                        app_dir = optarg;
                        break;
                case ARG_ONCE:
                        once = true;
                        break;
                case 'h':
                        grant_usage(stdout);
                        return 0;
                default:
                        grant_usage(stderr);
                        return CELLA_EXIT_USAGE;
                }
        }
        if (argc - optind != 2) {
                log_error("grant: expected APP RIGHT; see 'cella grant --help'");
                return CELLA_EXIT_USAGE;
        }
        app = argv[optind];
        right = argv[optind + 1];
        if ((code = cli_app_id_arg(app)) != 0)
                return code;
        r = capability_right_parse(right, &parsed, &why);
        if (r == -EINVAL && !strchr(right, ':') && capability_lookup(right, strlen(right)))
                name_only = true; /* every requested scope of it */
        else if (r < 0) {
                const CapabilityInfo *near = NULL;
                size_t nlen = strcspn(right, ":");

                if (r == -ENOENT)
                        near = capability_suggest(right, nlen);
                if (near)
                        log_error("'%s' is not a right: %s; did you mean '%s%s'?", right, why,
                                  near->name, right + nlen);
                else
                        log_error("'%s' is not a right: %s", right, why);
                return CELLA_EXIT_USAGE;
        }

        if ((code = cli_grants_load(state_dir, app_dir, app, &g, &requested, &is_signed)) != 0)
                return code;
        if (!name_only)
                return grant_one(g, state_dir, app, right, once, is_signed, requested);

        STRV_FOREACH (p, requested) {
                size_t len = strlen(right);

                if (strncmp(*p, right, len) != 0 || (*p)[len] != ':')
                        continue;
                n++;
                r = grant_one(g, state_dir, app, *p, once, is_signed, requested);
                if (r != 0)
                        code = r;
        }
        if (n == 0) {
                log_not_requested(app, right, requested);
                return 1;
        }
        return code;
}
