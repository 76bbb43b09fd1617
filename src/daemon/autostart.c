/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The autostart (docs/daemon.md, "Autostart"): at start, the installed apps with a
 * restart policy ("restart": "on-failure" or "always") or "autostart": true come up,
 * with the installed apps they depend on, in the dependency waves of `cella boot`
 * (bootorder.h): services before the apps that use them.
 *
 * The installed apps are the store's, as store_list() (src/store/store.h) reports
 * them: the daemon never reads the store's layout itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "daemon/daemon-internal.h"
#include "store/store.h"
#include "supervisor/bootorder.h"
#include "supervisor/run.h"

typedef struct InstalledApp {
        char *dir; /* the version folder, real path */
        Manifest *manifest;
        bool wanted; /* to be started: wanted itself, or a dependency of one */
} InstalledApp;

static void installed_free(InstalledApp *apps, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(apps[i].dir);
                manifest_free(apps[i].manifest);
        }
        free(apps);
}

/* The installed apps of state_dir (store_list()), each with its version folder's
 * manifest. A folder that does not load, or whose manifest names another id, is said
 * and skipped (the other apps still start). Returns 0 and *ret, *ret_n, or -errno. */
static int installed_apps(const char *state_dir, InstalledApp **ret, size_t *ret_n)
{
        StoreApp *list = NULL;
        InstalledApp *apps;
        size_t n_list = 0, n = 0;
        int r;

        r = store_list(state_dir, &list, &n_list);
        if (r < 0)
                return r;
        apps = calloc(n_list ?: 1, sizeof *apps);
        if (!apps) {
                store_app_free_many(list, n_list);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_list; i++) {
                InstalledApp *a = &apps[n];

                if (supervisor_load_manifest(list[i].dir, &a->dir, &a->manifest, NULL) < 0) {
                        log_error("%s: not started (its manifest is above)", list[i].dir);
                        continue;
                }
                if (strcmp(a->manifest->id, list[i].id) != 0) {
                        log_error("%s: its manifest's id is %s, not %s: not started", list[i].dir,
                                  a->manifest->id, list[i].id);
                        free(a->dir);
                        manifest_free(a->manifest);
                        *a = (InstalledApp){};
                        continue;
                }
                n++;
        }
        store_app_free_many(list, n_list);
        *ret = apps;
        *ret_n = n;
        return 0;
}

/* Whether the daemon starts m by itself: a restart policy says it should run. */
static bool wants_start(const Manifest *m)
{
        return m->restart != MANIFEST_RESTART_NO || m->autostart;
}

static InstalledApp *find_app(InstalledApp *apps, size_t n, const char *id)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(apps[i].manifest->id, id) == 0)
                        return &apps[i];
        return NULL;
}

/* Marks a wanted, and what it depends on, transitively. A dependency that is not
 * installed is said; the app is then left for supervisor_start_added() to refuse.
 * Returns false if one is missing. */
static bool want(InstalledApp *apps, size_t n, InstalledApp *a, unsigned depth)
{
        bool ok = true;

        if (a->wanted || depth > n)
                return true;
        a->wanted = true;
        STRV_FOREACH (dep, a->manifest->depends) {
                InstalledApp *b = find_app(apps, n, *dep);

                if (!b) {
                        log_error("%s: not started: it depends on %s, which is not installed",
                                  a->manifest->id, *dep);
                        ok = false;
                        continue;
                }
                ok &= want(apps, n, b, depth + 1);
        }
        return ok;
}

int daemon_autostart(Daemon *d)
{
        InstalledApp *apps = NULL;
        _cleanup_free_ Manifest **ms = NULL;
        _cleanup_free_ size_t *idx = NULL;
        BootOrder order = {};
        BootOrderError e = {};
        size_t n = 0, m = 0, started;
        int r;

        r = installed_apps(d->state_dir, &apps, &n);
        if (r < 0)
                return log_error_errno(r, "cannot list the installed apps: %m");
        for (size_t i = 0; i < n; i++)
                if (wants_start(apps[i].manifest) && !want(apps, n, &apps[i], 0)) {
                        /* Not started: its missing dependency would fail it anyway. */
                        apps[i].wanted = false;
                }
        ms = calloc(n ?: 1, sizeof *ms);
        idx = calloc(n ?: 1, sizeof *idx);
        if (!ms || !idx) {
                r = log_error_errno(-ENOMEM, "cannot start the installed apps: %m");
                goto out;
        }
        for (size_t i = 0; i < n; i++)
                if (apps[i].wanted) {
                        idx[m] = i;
                        ms[m++] = apps[i].manifest;
                }
        if (m == 0) {
                r = 0;
                goto out;
        }
        r = boot_order_compute(ms, m, &order, &e);
        if (r == -ELOOP) {
                log_error("the installed apps depend on each other in a cycle: %s; none of "
                          "them is started",
                          e.cycle);
                goto out;
        }
        if (r < 0) {
                log_error_errno(r, "cannot order the installed apps: %m");
                goto out;
        }
        for (size_t k = 0; k < order.n; k++) {
                InstalledApp *a = &apps[idx[order.order[k]]];
                SupervisorError err = {};

                /* Adopted (daemon_adopt()) or registered already: not twice. */
                if (supervisor_has_app(d->sup, a->manifest->id))
                        continue;
                r = supervisor_add_or_fail(d->sup, a->dir, TAKE_PTR(a->manifest),
                                           (unsigned)order.wave_of[order.order[k]], &err);
                if (r < 0)
                        log_error("%s: not started (the reason is above)", a->dir);
        }
        started = supervisor_start_added(d->sup);
        log_info("started %zu installed app(s) in %zu wave(s)", started, order.n_waves);
        r = (int)started;
out:
        boot_order_done(&order);
        installed_free(apps, n);
        return r;
}
