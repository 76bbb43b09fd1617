/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A start of an installed app runs the version installed at that moment
 * (docs/store.md, "Updates and running apps"): cellad gives the kernel the store's
 * resolver (supervisor_set_app_dir_fn: store_app_dir()), and every start and
 * restart, asked for or by the restart policy, asks it first. A new version is
 * loaded in place: its manifest, its folder claimed again (signature, identity), and
 * its rights installed again at the spawn (instance_install: what it no longer
 * requests is revoked by grants_install_as()).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "supervisor/run.h"
#include "supervisor/supervisor-internal.h"

void supervisor_set_app_dir_fn(Supervisor *s, SupervisorAppDirFn fn, void *userdata)
{
        s->app_dir_fn = fn;
        s->app_dir_userdata = userdata;
}

/* Whether m can replace inst's manifest in place: same id, and the same packed group
 * (a group's host and spec are built from its members at registration). */
static bool same_place(const Instance *inst, const Manifest *m)
{
        const char *old_group = inst->group ? inst->manifest->group : NULL;
        const char *new_group = m->isolation == MANIFEST_ISOLATION_PACKED ? m->group : NULL;

        if (strcmp(m->id, inst->manifest->id) != 0)
                return false;
        if (!old_group || !new_group)
                return !old_group && !new_group;
        return strcmp(old_group, new_group) == 0;
}

int instance_reload(Instance *inst, SupervisorError *err)
{
        Supervisor *s = inst->sup;
        const char *id = inst->manifest->id;
        _cleanup_free_ char *dir = NULL, *real = NULL, *new_dir = NULL;
        char old_key_id[sizeof inst->key_id];
        bool old_signed = inst->signed_ok;
        SupervisorError e = {};
        Manifest *m = NULL, *old;
        char *old_dir;
        int r;

        if (!s->app_dir_fn)
                return 0;
        r = s->app_dir_fn(id, &dir, s->app_dir_userdata);
        if (r == -ENOENT) {
                log_error("%s: not started: it is not installed any more", id);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, ENOENT, id);
        }
        if (r < 0) {
                log_error_errno(r, "%s: not started: cannot find its installed version: %m", id);
                return supervisor_error(err, SUPERVISOR_STEP_STATE, -r, id);
        }
        /* The store's answer is canonical when nothing on its path is a symlink: then
         * two system calls instead of realpath()'s walk (fileio.h). */
        r = path_canonicalize(dir, &real);
        if (r < 0) {
                log_error_errno(r, "%s: not started: %s: %m", id, dir);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, -r, dir);
        }
        if (strcmp(real, inst->app_dir) == 0)
                return 0; /* the version it has: nothing to load */
        r = supervisor_load_manifest(real, &new_dir, &m, &e);
        if (r < 0) {
                log_error("%s: not started: its installed version %s does not load (above)", id,
                          real);
                if (err)
                        *err = e;
                return r;
        }
        if (!same_place(inst, m)) {
                log_error("%s: not started: its installed version %s changes its id, isolation "
                          "or packed group, which this cellad took at the app's registration; "
                          "restart cellad to run it",
                          id, real);
                manifest_free(m);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, EBUSY, real);
        }
        /* In place; the old manifest and folder come back if the claim refuses. */
        memcpy(old_key_id, inst->key_id, sizeof old_key_id);
        old = inst->manifest;
        old_dir = inst->app_dir;
        inst->manifest = m;
        inst->app_dir = new_dir;
        r = instance_claim(s, inst, &e);
        if (r < 0) {
                inst->manifest = old;
                inst->app_dir = old_dir;
                inst->signed_ok = old_signed;
                memcpy(inst->key_id, old_key_id, sizeof old_key_id);
                manifest_free(m);
                if (err)
                        *err = e;
                return r;
        }
        log_info("%s: starts its installed version %s (it ran %s)", id,
                 m->version ?: strrchr(new_dir, '/') + 1, old_dir);
        TAKE_PTR(new_dir);
        inst->run.name = inst->manifest->id; /* borrowed from the manifest */
        inst->installed = false;             /* its rights again, from this manifest */
        manifest_free(old);
        free(old_dir);
        return 0;
}

static void on_dropped_timer(uv_handle_t *h)
{
        SandboxedRun *r = h->data;

        instance_free(r->owner);
}

int supervisor_drop_app(Supervisor *s, Instance *inst)
{
        InstanceState st = instance_state(inst);
        size_t i;

        if (st != INSTANCE_STATE_INSTALLED && st != INSTANCE_STATE_STOPPED &&
            st != INSTANCE_STATE_FAILED)
                return -EBUSY;
        if (inst->group)
                return -EOPNOTSUPP; /* its packed group's spec and host hold it */
        /* Nothing of a run left on the loop (a close still pending, a pending restart). */
        if (inst->life.restart_asked || inst->run.sandbox || inst->run.restart_pending ||
            inst->run.sandbox_poll_init || inst->run.notify_poll_init ||
            sandboxed_busy(&inst->run) || inst->out.open || inst->err.open || inst->in.open ||
            inst->out.closing || inst->err.closing || inst->in.closing)
                return -EBUSY;
        for (i = 0; i < s->n_apps && s->apps[i] != inst; i++)
                ;
        if (i == s->n_apps)
                return -ENOENT;
        memmove(s->apps + i, s->apps + i + 1, (s->n_apps - i - 1) * sizeof *s->apps);
        s->n_apps--;
        if (inst->run.timer_init) {
                /* The timer's memory is inst's: freed once libuv is done with it. */
                inst->run.timer_init = false;
                inst->run.timer.data = &inst->run;
                uv_close((uv_handle_t *)&inst->run.timer, on_dropped_timer);
        } else
                instance_free(inst);
        supervisor_changed(s);
        return 0;
}
