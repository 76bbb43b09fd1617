/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella permissions: what an app requested, what it holds, and its last gesture
 * (docs/capabilities.md). --json prints one JSON object (documented there).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "cli/cli.h"
#include "policy/capability.h"
#include "policy/grants.h"
#include "policy/manifest.h"
#include "cli/exit-codes.h"

enum {
        ARG_STATE_DIR = 0x100,
        ARG_APP_DIR,
        ARG_JSON,
};

/* "2025-01-31T12:00:00Z": UTC, second resolution. */
#define TIME_TEXT_MAX 32

static void permissions_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella permissions [OPTIONS] APP\n"
                "\n"
                "Lists the rights APP requests (with their protection level and whether\n"
                "they are granted), the grants it holds, and its last user gesture.\n"
                "\n"
                "Options:\n"
                "      --json            one JSON object (docs/capabilities.md)\n"
                "      --app-dir DIR     install APP from DIR first (its manifest and signature)\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0; 1 APP is not installed; 240 bad command line;\n"
                "241 bad manifest; 242 state directory problem.\n",
                cli_default_state_dir());
}

static const char *time_text(int64_t ms, char buf[static TIME_TEXT_MAX])
{
        time_t t = (time_t)(ms / 1000);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, TIME_TEXT_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, TIME_TEXT_MAX, "?");
        return buf;
}

/* True if some grant lies within requested (the right as the manifest wrote it). */
static bool requested_is_granted(const char *requested, const Grant *grants, size_t n)
{
        CapabilityRight want, have;

        if (capability_right_parse(requested, &want, NULL) < 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (capability_right_parse(grants[i].right, &have, NULL) == 0 &&
                    capability_right_covers(&want, &have))
                        return true;
        return false;
}

static const CapabilityInfo *info_of(const char *right)
{
        CapabilityRight r;

        return capability_right_parse(right, &r, NULL) == 0 ? r.cap : NULL;
}

/* The level of right for app now: a normal right that reaches other apps beyond what
 * is its own or exported to it is shown as dangerous (docs/capabilities.md). */
static const char *level_text(Grants *g, const char *app, const char *right)
{
        CapabilityLevel level;

        if (grants_level(g, app, right, &level) < 0)
                return info_of(right) ? capability_level_to_string(info_of(right)->level)
                                      : "unknown";
        return capability_level_to_string(level);
}

static int print_json(Grants *g, const char *app, bool is_signed, char **requested,
                      const Grant *grants, size_t n, bool has_gesture, int64_t gesture_ms)
{
        json_t *o, *req, *gl;
        char buf[TIME_TEXT_MAX];
        int r;

        o = json_object();
        req = json_array();
        gl = json_array();
        if (!o || !req || !gl) {
                json_decref(o);
                json_decref(req);
                json_decref(gl);
                return -ENOMEM;
        }
        json_object_set_new(o, "app", json_string(app));
        json_object_set_new(o, "signed", json_boolean(is_signed));
        json_object_set_new(o, "last_gesture",
                            has_gesture ? json_string(time_text(gesture_ms, buf)) : json_null());
        json_object_set_new(o, "requested", req);
        json_object_set_new(o, "grants", gl);
        STRV_FOREACH (p, requested) {
                const CapabilityInfo *c = info_of(*p);

                json_array_append_new(req,
                                      json_pack("{s:s, s:s, s:b, s:b}", "right", *p, "level",
                                                level_text(g, app, *p), "gesture", c && c->gesture,
                                                "granted", requested_is_granted(*p, grants, n)));
        }
        for (size_t i = 0; i < n; i++) {
                const CapabilityInfo *c = info_of(grants[i].right);

                json_array_append_new(
                        gl, json_pack("{s:s, s:s, s:b, s:s, s:s}", "right", grants[i].right,
                                      "level", c ? level_text(g, app, grants[i].right) : "unknown",
                                      "one_time", grants[i].one_time, "granted_by",
                                      grant_source_to_string(grants[i].granted_by), "granted_at",
                                      time_text(grants[i].granted_at_ms, buf)));
        }
        r = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ? -EIO : 0;
        if (r == 0)
                putchar('\n');
        json_decref(o);
        return r;
}

static void print_text(Grants *g, const char *app, bool is_signed, char **requested,
                       const Grant *grants, size_t n, bool has_gesture, int64_t gesture_ms)
{
        char buf[TIME_TEXT_MAX];

        printf("app:          %s\n", app);
        printf("signed:       %s\n", is_signed ? "yes (by a trusted key)" : "no");
        printf("last gesture: %s\n", has_gesture ? time_text(gesture_ms, buf) : "never");
        printf("requested:%s\n", requested && *requested ? "" : " nothing");
        STRV_FOREACH (p, requested) {
                const CapabilityInfo *c = info_of(*p);

                printf("  %-40s %-10s %s%s\n", *p, level_text(g, app, *p),
                       requested_is_granted(*p, grants, n) ? "granted" : "not granted",
                       c && c->gesture ? ", needs a user gesture" : "");
        }
        printf("grants:%s\n", n ? "" : " none");
        for (size_t i = 0; i < n; i++)
                printf("  %-40s %-10s by %-9s at %s%s\n", grants[i].right,
                       level_text(g, app, grants[i].right),
                       grant_source_to_string(grants[i].granted_by),
                       time_text(grants[i].granted_at_ms, buf),
                       grants[i].one_time ? ", one time" : "");
}

int cli_permissions(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"app-dir", required_argument, NULL, ARG_APP_DIR},
                {"json", no_argument, NULL, ARG_JSON},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir(), *app_dir = NULL, *app;
        _cleanup_(grants_freep) Grants *g = NULL;
        _cleanup_strv_free_ char **requested = NULL;
        _cleanup_free_ Grant *grants = NULL;
        bool json = false, is_signed = false, has_gesture = false;
        int64_t gesture_ms = 0;
        size_t n = 0;
        int c, r, code;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_STATE_DIR:
                        if ((code = cli_state_dir_arg(optarg, &state_dir)) != 0)
                                return code;
                        break;
                case ARG_APP_DIR:
                        app_dir = optarg;
                        break;
                case ARG_JSON:
                        json = true;
                        break;
                case 'h':
                        permissions_usage(stdout);
                        return 0;
                default:
                        permissions_usage(stderr);
                        return CELLA_EXIT_USAGE;
                }
        }
        if (argc - optind != 1) {
                log_error("permissions: expected APP; see 'cella permissions --help'");
                return CELLA_EXIT_USAGE;
        }
        app = argv[optind];
        if ((code = cli_app_id_arg(app)) != 0)
                return code;
        if ((code = cli_grants_load(state_dir, app_dir, app, &g, &requested, &is_signed)) != 0)
                return code;
        r = grants_list(g, app, &grants, &n);
        if (r >= 0) {
                r = grants_gesture_last(g, app, &gesture_ms);
                has_gesture = r == 0;
                if (r == -ENOENT)
                        r = 0;
        }
        if (r < 0) {
                log_error_errno(r, "cannot read %s/" GRANTS_DB_FILE ": %m", state_dir);
                return CELLA_EXIT_STATE;
        }
        if (!json) {
                print_text(g, app, is_signed, requested, grants, n, has_gesture, gesture_ms);
                return 0;
        }
        r = print_json(g, app, is_signed, requested, grants, n, has_gesture, gesture_ms);
        if (r < 0) {
                log_error_errno(r, "cannot print: %m");
                return CELLA_EXIT_INTERNAL;
        }
        return 0;
}
