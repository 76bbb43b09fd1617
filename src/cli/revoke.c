/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cella revoke: takes rights back from an app (docs/capabilities.md). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "cli/cli.h"
#include "policy/capability.h"
#include "policy/grants.h"
#include "policy/manifest.h"
#include "cli/exit-codes.h"

static void revoke_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella revoke [OPTIONS] APP RIGHT\n"
                "\n"
                "Revokes every grant of APP that RIGHT covers: a bare name (\"net.connect\") all\n"
                "of that right, \"name:scope\" the grants within that scope. Running cella\n"
                "kernels are told at once: the app loses the right, and the handles that\n"
                "depend on it are closed.\n"
                "\n"
                "Options:\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 revoked; 1 nothing matched; 240 bad command line;\n"
                "242 state directory problem.\n",
                cli_default_state_dir());
}

int cli_revoke(int argc, char **argv)
{
        const char *state_dir, *app, *right;
        _cleanup_(grants_freep) Grants *g = NULL;
        _cleanup_strv_free_ char **gone = NULL;
        int r, code;

        if (!cli_parse_state_dir_only(argc, argv, revoke_usage, &state_dir, &code))
                return code;
        if (argc - optind != 2) {
                log_error("revoke: expected APP RIGHT; see 'cella revoke --help'");
                return CELLA_EXIT_USAGE;
        }
        app = argv[optind];
        right = argv[optind + 1];
        if ((code = cli_app_id_arg(app)) != 0)
                return code;
        if ((code = cli_grants_open(state_dir, &g)) != 0)
                return code;
        r = grants_revoke(g, app, right, &gone);
        if (r == -ENOENT || r == -EINVAL) {
                const CapabilityInfo *near = capability_suggest(right, strcspn(right, ":"));

                if (near)
                        log_error("'%s' is not a right (see docs/capabilities.md); did you mean "
                                  "'%s%s'?",
                                  right, near->name, right + strcspn(right, ":"));
                else
                        log_error("'%s' is not a right (see docs/capabilities.md)", right);
                return CELLA_EXIT_USAGE;
        }
        if (r < 0) {
                log_error_errno(r, "cannot revoke '%s' from %s: %m", right, app);
                return CELLA_EXIT_STATE;
        }
        if (r == 0) {
                log_error("%s holds no grant within '%s'; nothing revoked", app, right);
                return 1;
        }
        STRV_FOREACH (p, gone)
                printf("revoked '%s' from %s\n", *p, app);
        cli_grants_changed(state_dir, app, "revoked", gone, false);
        return 0;
}
