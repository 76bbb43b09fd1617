/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What cellad (src/daemon) needs of the kernel without its internals
 * (supervisor.h, "The daemon's view of the kernel").
 */
#include "supervisor/supervisor-internal.h"

uv_loop_t *supervisor_uv_loop(Supervisor *s)
{
        return &s->loop;
}

int supervisor_open(Supervisor *s, SupervisorError *err)
{
        return supervisor_ready(s, err);
}

bool supervisor_stopping(const Supervisor *s)
{
        return s->stopping;
}

size_t supervisor_count_states(const Supervisor *s, size_t *counts, size_t n)
{
        for (size_t i = 0; i < n; i++)
                counts[i] = 0;
        for (size_t i = 0; i < s->n_apps; i++) {
                size_t st = (size_t)instance_state(s->apps[i]);

                if (st < n)
                        counts[st]++;
        }
        return s->n_apps;
}

const char *supervisor_state_name(InstanceState st)
{
        return instance_state_to_string(st) ?: "unknown";
}

bool supervisor_has_app(Supervisor *s, const char *id)
{
        return supervisor_find(s, id) != NULL;
}

int supervisor_add_or_fail(Supervisor *s, const char *app_dir, Manifest *m, unsigned wave,
                           SupervisorError *err)
{
        size_t before = s->n_apps;
        SupervisorError e = {};
        int r;

        r = supervisor_add(s, app_dir, m, NULL, wave, NULL, &e);
        if (r < 0 && s->n_apps > before) {
                /* Registered, then refused (its claim, its group): it must never start. */
                Instance *inst = s->apps[s->n_apps - 1];

                inst->state = INSTANCE_FAILED;
                inst->error = e;
                inst->exit_code = supervisor_exit_code(s, &e);
        }
        if (err)
                *err = e;
        return r;
}

json_t *supervisor_ps_records(Supervisor *s)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < s->n_apps; i++)
                if (json_array_append_new(a, instance_record(s->apps[i])) < 0)
                        return json_decref(a), NULL;
        return a;
}

pid_t instance_pid(const Instance *inst)
{
        const SandboxedRun *run = inst->group ? &inst->group->run : &inst->run;

        return inst->state == INSTANCE_RUNNING && run->sandbox ? run->sandbox->pid : 0;
}
