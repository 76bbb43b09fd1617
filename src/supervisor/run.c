/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `cella run`: one app, the kernel embedded in the CLI (supervisor.c), the app's
 * output copied to ours, our signals forwarded to it, and its exit status ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "policy/capability.h"
#include "policy/manifest.h"
#include "supervisor/run.h"
#include "supervisor/supervisor-internal.h"

void supervisor_print_manifest_error(const ManifestError *e)
{
        if (e->line > 0)
                log_error("%s:%d:%d: %s", e->file, e->line, e->column, e->message);
        else if (e->key[0])
                log_error("%s: %s: %s", e->file, e->key, e->message);
        else
                log_error("%s: %s", e->file, e->message);
}

int supervisor_load_manifest(const char *app_dir, char **ret_real_dir, Manifest **ret,
                             SupervisorError *err)
{
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_free_ char *real = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        const char *bad = NULL, *why = NULL;
        ManifestError merr = {};
        int r;

        real = realpath(app_dir, NULL);
        if (!real) {
                r = log_error_errno(negative_errno(), "%s: %m", app_dir);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, r, app_dir);
        }
        dirfd = open(real, O_DIRECTORY | O_CLOEXEC | O_PATH);
        if (dirfd < 0) {
                r = log_error_errno(negative_errno(), "%s: %m", app_dir);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, r, app_dir);
        }
        r = manifest_load_at(dirfd, app_dir, &m, &merr);
        if (r < 0) {
                supervisor_print_manifest_error(&merr);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, r, merr.message);
        }
        r = capability_check_manifest(m, &bad, &why);
        if (r < 0) {
                log_error("%s/manifest.json: permissions: '%s': %s", app_dir, bad, why);
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, r, bad);
        }
        if (m->runtime != MANIFEST_RUNTIME_NATIVE && m->runtime != MANIFEST_RUNTIME_LUA) {
                log_error("%s/manifest.json: runtime: \"%s\" apps cannot run in this build",
                          app_dir, manifest_runtime_to_string(m->runtime));
                return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, EOPNOTSUPP, "runtime");
        }
        *ret_real_dir = TAKE_PTR(real);
        *ret = TAKE_PTR(m);
        return 0;
}

/* Declared in run.h. */
SupervisorOptions kernel_supervisor_options(const KernelOptions *k, SupervisorOutput output,
                                            bool boot)
{
        return (SupervisorOptions){.state_dir = k->state_dir,
                                   .uid_base = k->uid_base,
                                   .uid_count = k->uid_count,
                                   .cgroup_mode = k->cgroup_mode,
                                   .output = output,
                                   .json_status_fd = k->json_status_fd,
                                   .raw_output = k->raw_output,
                                   .tty = k->tty,
                                   .no_prompt = k->no_prompt,
                                   .roots = k->roots,
                                   .boot = boot,
                                   .exit_code = k->exit_code};
}

int supervisor_run(const RunOptions *o, SupervisorError *err)
{
        _cleanup_free_ char *app_dir = NULL;
        Supervisor *s = NULL;
        Manifest *m = NULL;
        Instance *inst = NULL;
        SupervisorOptions so;
        int r;

        r = supervisor_load_manifest(o->app_dir, &app_dir, &m, err);
        if (r < 0)
                return r;
        so = kernel_supervisor_options(&o->k, SUPERVISOR_OUTPUT_TERMINAL, false);
        r = supervisor_new(&so, &s, err);
        if (r < 0) {
                manifest_free(m);
                return r;
        }
        r = supervisor_add(s, app_dir, m, o->extra_args, 0, &inst, err);
        /* Leftovers of cella processes that died (SIGKILL, crash) are swept while
         * the sandbox takes its last steps (instance_starting()): it only touches
         * leaves whose owner is gone, never ours, so the app need not wait for it. */
        s->sweep_pending = true;
        if (r >= 0) {
                r = instance_start(inst);
                if (r < 0)
                        (void)supervisor_error(err, SUPERVISOR_STEP_INTERNAL, r, NULL);
                if (r < 0 && err && instance_error(inst)->step != SUPERVISOR_STEP_NONE)
                        *err = *instance_error(inst);
        }
        if (r >= 0) {
                supervisor_sweep(s); /* if the spawn did not */
                supervisor_loop(s);
                r = instance_exit_code(inst);
        }
        supervisor_free(s);
        return r;
}
