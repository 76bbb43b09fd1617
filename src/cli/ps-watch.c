/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella ps --all and --watch (ps.c has the table): the installed apps no kernel
 * knows, and a new snapshot on every state change.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "policy/manifest.h"
#include "store/store.h"
#include "supervisor/control.h"

/* Without cellad, --watch asks every kernel this often (ms) and prints on a change. */
#define PS_WATCH_POLL_MS 1000

static bool listed(json_t *apps, const char *id)
{
        size_t i;
        json_t *a;

        json_array_foreach(apps, i, a)
        {
                const char *x = json_string_value(json_object_get(a, "id"));

                if (x && strcmp(x, id) == 0)
                        return true;
        }
        return false;
}

int cli_ps_add_installed(const char *state_dir, json_t *apps)
{
        StoreApp *list = NULL;
        size_t n = 0;
        int r;

        /* The store's installed apps (store_list(), docs/store.md): the CLI does not
         * read the store's layout itself. */
        r = store_list(state_dir, &list, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (listed(apps, list[i].id))
                        continue;
                json_array_append_new(apps, json_pack("{s:s, s:s, s:b, s:i, s:s}", "id", list[i].id,
                                                      "state", "installed", "running", false, "pid",
                                                      0, "version", list[i].version ?: ""));
        }
        store_app_free_many(list, n);
        return 0;
}

typedef struct Watch {
        bool json, all, tty;
        const char *state_dir;
        void (*print)(json_t *apps);
} Watch;

static void show(const Watch *w, json_t *apps)
{
        if (w->json) {
                char *s = json_dumps(apps, JSON_COMPACT);

                if (s)
                        puts(s);
                free(s);
        } else {
                if (w->tty)
                        fputs("\033[H\033[2J", stdout);
                w->print(apps);
                if (!w->tty)
                        putchar('\n');
        }
        fflush(stdout);
}

static int on_snapshot(json_t *params, bool continues, void *ud)
{
        const Watch *w = ud;
        json_t *apps = json_object_get(params, "apps");

        if (!json_is_array(apps))
                return 0;
        show(w, apps);
        return ferror(stdout) ? -EPIPE : 0;
}

int cli_ps_watch(const char *state_dir, bool all, bool json, void (*print)(json_t *apps))
{
        Watch w = {.json = json,
                   .all = all,
                   .tty = isatty(STDOUT_FILENO) == 1,
                   .state_dir = state_dir,
                   .print = print};
        _cleanup_free_ char *last = NULL;

        if (cli_daemon_running(state_dir))
                /* cellad sends a snapshot on each change, at most one per 100 ms. */
                return cli_daemon_call("ps", state_dir, "org.cella.Ps",
                                       json_pack("{s:b}", "all", all), true, json, on_snapshot, &w);
        /* No cellad: every kernel, asked again each second, shown when it changed. */
        for (;;) {
                struct timespec ts = {.tv_sec = PS_WATCH_POLL_MS / 1000,
                                      .tv_nsec = (PS_WATCH_POLL_MS % 1000) * 1000000L};
                json_t *apps = NULL;
                char *text;
                int code;

                code = cli_ask_kernels("ps", state_dir, "org.cella.Ps", NULL, "apps", "apps",
                                       &apps);
                if (code != 0)
                        return code;
                if (all)
                        (void)cli_ps_add_installed(state_dir, apps);
                text = json_dumps(apps, JSON_COMPACT | JSON_SORT_KEYS);
                /* started_ms and figures change on their own: the states and pids
                 * decide what a change is. */
                if (text && (!last || strcmp(text, last) != 0)) {
                        show(&w, apps);
                        free(last);
                        last = text;
                } else
                        free(text);
                json_decref(apps);
                if (ferror(stdout))
                        return CELLA_EXIT_INTERNAL;
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
}
