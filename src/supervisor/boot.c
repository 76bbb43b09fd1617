/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `cella boot DIR`: every app folder in DIR under one kernel. The apps start in the
 * waves of bootorder.c (services before the apps that depend on them); each app's
 * output goes to its capped log (<state>/logs/<id>.log); restart policies apply;
 * the boot ends when every app of kind "app" has exited (its services are stopped
 * then) or on Ctrl-C (apps first, then services, wave by wave in reverse).
 */
#include <dirent.h>
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
#include "supervisor/bootorder.h"
#include "supervisor/error.h"
#include "supervisor/run.h"
#include "supervisor/supervisor-internal.h"

typedef struct BootApp {
        char *dir; /* real path */
        Manifest *manifest;
} BootApp;

static int entry_cmp(const struct dirent **a, const struct dirent **b)
{
        return strcmp((*a)->d_name, (*b)->d_name);
}

/* The subfolders of dir holding a manifest.json, in name order (so a boot is the same
 * every time). Returns 0 or a negative errno with *err after printing why. */
static int boot_scan(const char *dir, BootApp **ret, size_t *ret_n, SupervisorError *err)
{
        struct dirent **names = NULL;
        BootApp *apps = NULL;
        size_t n = 0;
        int k, r = 0;

        k = scandir(dir, &names, NULL, entry_cmp);
        if (k < 0) {
                r = log_error_errno(negative_errno(), "cannot read %s: %m", dir);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, r, dir);
        }
        for (int i = 0; i < k; i++) {
                _cleanup_free_ char *sub = NULL, *mf = NULL;
                struct stat st;
                BootApp *a;

                if (r < 0 || names[i]->d_name[0] == '.')
                        continue;
                if (asprintf(&sub, "%s/%s", dir, names[i]->d_name) < 0 ||
                    asprintf(&mf, "%s/manifest.json", sub) < 0) {
                        r = supervisor_error(err, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
                        continue;
                }
                if (stat(sub, &st) < 0 || !S_ISDIR(st.st_mode) || lstat(mf, &st) < 0)
                        continue; /* not an app folder: build files, docs, ... */
                if (n >= BOOT_APPS_MAX) {
                        log_error("%s: more than %d apps", dir, BOOT_APPS_MAX);
                        r = supervisor_error(err, SUPERVISOR_STEP_USAGE, E2BIG, dir);
                        continue;
                }
                a = reallocarray(apps, n + 1, sizeof *apps);
                if (!a) {
                        r = supervisor_error(err, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
                        continue;
                }
                apps = a;
                apps[n] = (BootApp){};
                r = supervisor_load_manifest(sub, &apps[n].dir, &apps[n].manifest, err);
                if (r >= 0)
                        n++;
        }
        for (int i = 0; i < k; i++)
                free(names[i]);
        free(names);
        if (r >= 0 && n == 0) {
                log_error("%s holds no app folder (a folder with a manifest.json)", dir);
                r = supervisor_error(err, SUPERVISOR_STEP_MANIFEST, ENOENT, dir);
        }
        if (r < 0) {
                for (size_t i = 0; i < n; i++) {
                        free(apps[i].dir);
                        manifest_free(apps[i].manifest);
                }
                free(apps);
                return r;
        }
        *ret = apps;
        *ret_n = n;
        return 0;
}

/* The apps' boot order (bootorder.h). Returns 0 or a negative errno with *err after
 * printing why. */
static int boot_order(const BootApp *apps, size_t n, BootOrder *ret, SupervisorError *err)
{
        _cleanup_free_ Manifest **ms = calloc(n, sizeof *ms);
        BootOrderError e = {};
        int r;

        if (!ms)
                return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, ENOMEM, NULL);
        for (size_t i = 0; i < n; i++)
                ms[i] = apps[i].manifest;
        r = boot_order_compute(ms, n, ret, &e);
        switch (r) {
        case 0:
                return 0;
        case -EEXIST:
                log_error("two app folders hold the same app id %s", e.app);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, r, e.app);
        case -ENOENT:
                log_error("%s depends on %s, which is not among the apps to boot", e.app, e.other);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, r, e.other);
        case -ELOOP:
                log_error("the apps depend on each other in a cycle: %s", e.cycle);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, r, e.cycle);
        default:
                log_error_errno(r, "cannot order the apps: %m");
                return supervisor_error(err, SUPERVISOR_STEP_INTERNAL, r, NULL);
        }
}

/* NULL if every app inst depends on runs; else the first that does not. For a
 * packed app, every app any member of its group depends on (outside the group). */
static const Instance *dep_not_running(Supervisor *s, const Instance *inst, const char **ret_id)
{
        size_t n = inst->group ? inst->group->n_members : 1;

        for (size_t i = 0; i < n; i++) {
                const Instance *m = inst->group ? inst->group->members[i] : inst;

                STRV_FOREACH (d, m->manifest->depends) {
                        Instance *dep = supervisor_find(s, *d);

                        if (!dep || (dep->state != INSTANCE_RUNNING &&
                                     !(inst->group && dep->group == inst->group))) {
                                *ret_id = *d;
                                return dep ?: inst;
                        }
                }
        }
        return NULL;
}

/* Says why inst (or its group) is not started: the app dep (id dep_id) it depends
 * on is not running, and why that one is not. */
static void report_dep_not_running(const Instance *inst, const Instance *dep, const char *dep_id)
{
        const char *name = inst->group ? inst->group->name : inst->manifest->id;

        if (dep == inst)
                log_error("%s: not started: it depends on %s, which is not among the apps", name,
                          dep_id);
        else if (dep->state == INSTANCE_FAILED)
                log_error("%s: not started: %s, which it depends on, failed to start (exit status "
                          "%d; the reason is above)",
                          name, dep_id, dep->exit_code);
        else if (dep->state == INSTANCE_EXITED || dep->state == INSTANCE_RESTARTING)
                log_error("%s: not started: %s, which it depends on, exited (status %d; see "
                          "'cella logs %s')",
                          name, dep_id, dep->exit_code, dep_id);
        else
                log_error("%s: not started: %s, which it depends on, is not running", name, dep_id);
}

/* Two folders holding one app id: both named (the order cannot tell which one is
 * meant). Returns 0 or -EEXIST with *err (step manifest) after printing. */
static int boot_check_ids(const char *dir, const BootApp *apps, size_t n, SupervisorError *err)
{
        for (size_t i = 0; i < n; i++)
                for (size_t j = i + 1; j < n; j++)
                        if (strcmp(apps[i].manifest->id, apps[j].manifest->id) == 0) {
                                log_error("%s: two app folders hold the app id %s: %s and %s; an "
                                          "id names one app: remove one, or change its "
                                          "manifest's \"id\"",
                                          dir, apps[i].manifest->id, apps[i].dir, apps[j].dir);
                                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, EEXIST,
                                                        apps[i].manifest->id);
                        }
        return 0;
}

/* True if inst is the last member of its group in boot order: a group starts in
 * the wave of its latest member, all at once. */
static bool group_last(const Instance *inst)
{
        const Group *g = inst->group;

        return !g || g->members[g->n_members - 1] == inst;
}

/* Marks inst (and the rest of its group) failed: dep_id, which it depends on, is not
 * running. */
static void boot_dep_failed(Supervisor *s, Instance *inst, const char *dep_id)
{
        size_t nm = inst->group ? inst->group->n_members : 1;

        for (size_t i = 0; i < nm; i++) {
                Instance *m = inst->group ? inst->group->members[i] : inst;

                m->state = INSTANCE_FAILED;
                (void)supervisor_error(&m->error, SUPERVISOR_STEP_DEPENDS, ESRCH, dep_id);
                m->exit_code = supervisor_exit_code(s, &m->error);
                supervisor_status(s, json_pack("{s:s, s:s, s:s, s:s, s:i}", "event", "failed",
                                               "app", m->manifest->id, "step", "depends", "error",
                                               dep_id, "exit_code", m->exit_code));
        }
}

/* After the loop: says which apps failed or exited with an error. Returns true if
 * one did. */
static bool boot_report(Supervisor *s)
{
        bool bad = false;

        for (size_t k = 0; k < s->n_apps; k++) {
                Instance *inst = s->apps[k];
                int c = inst->exit_code;

                if (inst->state == INSTANCE_FAILED || (!inst->stop_requested && c != 0 &&
                                                       inst->manifest->kind == MANIFEST_KIND_APP)) {
                        log_error("%s: %s (exit status %d)", inst->manifest->id,
                                  inst->state != INSTANCE_FAILED ? "exited with an error"
                                  : inst->error.step == SUPERVISOR_STEP_DEPENDS
                                          ? "not started: an app it depends on is not running"
                                          : "failed",
                                  c);
                        bad = true;
                }
        }
        return bad;
}

size_t supervisor_start_added(Supervisor *s)
{
        size_t started = 0;

        for (size_t k = 0; k < s->n_apps; k++) {
                Instance *inst = s->apps[k];
                const Instance *dep;
                const char *dep_id = NULL;

                if (!group_last(inst) || inst->state != INSTANCE_STOPPED)
                        continue;
                dep = dep_not_running(s, inst, &dep_id);
                if (dep) {
                        report_dep_not_running(inst, dep, dep_id);
                        boot_dep_failed(s, inst, dep_id);
                        continue;
                }
                if (instance_start(inst) == 0)
                        started++;
        }
        return started;
}

int supervisor_boot(const BootOptions *o, SupervisorError *err)
{
        BootApp *apps = NULL;
        size_t n = 0;
        BootOrder order = {};
        Supervisor *s = NULL;
        SupervisorOptions so;
        int r;

        r = boot_scan(o->dir, &apps, &n, err);
        if (r < 0)
                return r;
        r = boot_check_ids(o->dir, apps, n, err);
        if (r >= 0)
                r = boot_order(apps, n, &order, err);
        if (r < 0)
                goto out;
        so = kernel_supervisor_options(&o->k, SUPERVISOR_OUTPUT_LOGS, true);
        r = supervisor_new(&so, &s, err);
        if (r < 0)
                goto out;
        /* Register all first (an app.launch may name any of them), in boot order. */
        for (size_t k = 0; k < order.n && r >= 0; k++) {
                size_t i = order.order[k];

                r = supervisor_add(s, apps[i].dir, TAKE_PTR(apps[i].manifest), NULL,
                                   (unsigned)order.wave_of[i], NULL, err);
        }
        if (r < 0)
                goto out;
        log_info("booting %zu app(s) from %s in %zu wave(s); logs in %s/logs", n, o->dir,
                 order.n_waves, o->k.state_dir);
        (void)supervisor_start_added(s);
        r = cgroup_sweep(s->cgm);
        if (r < 0)
                log_warning_errno(r, "cannot sweep leftover cgroups: %m");
        supervisor_changed(s);
        supervisor_loop(s);

        r = boot_report(s) ? 1 : 0;
out:
        supervisor_free(s);
        boot_order_done(&order);
        for (size_t i = 0; i < n; i++) {
                free(apps[i].dir);
                manifest_free(apps[i].manifest);
        }
        free(apps);
        return r;
}
