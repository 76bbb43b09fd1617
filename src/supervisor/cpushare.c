/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CPU shares by app state (docs/memory.md "CPU"; the table is src/memory/cpu.h):
 * on every recorded state change (lifecycle_note()), the app's CPU class goes to
 * where it is scheduled:
 *
 *   - an app alone: its cgroup leaf's weight (cpu.weight, or cpu.shares on v1 and
 *     hybrid hosts);
 *   - a packed member: a PRIORITY on its host's control channel (src/lua/hostctl.h),
 *     so the host's scheduler ranks it by its class, and the host's leaf gets the
 *     weight of its most important running member (the host is one cgroup).
 *
 * An adopted app's first state record (installed -> its state, after a restarted
 * cellad took it back) writes its weight again, so a weight table changed between
 * the two cellads, or a leaf changed behind cella's back, is corrected then.
 */
#include <errno.h>

#include "base/log.h"
#include "memory/cpu.h"
#include "supervisor/supervisor-internal.h"

int supervisor_cpu_class(InstanceState st)
{
        switch (st) {
        case INSTANCE_STATE_FOREGROUND:
                return CPU_CLASS_FOREGROUND;
        case INSTANCE_STATE_VISIBLE:
                return CPU_CLASS_VISIBLE;
        case INSTANCE_STATE_SERVICE:
                return CPU_CLASS_SERVICE;
        case INSTANCE_STATE_BACKGROUND:
                return CPU_CLASS_BACKGROUND;
        case INSTANCE_STATE_CACHED:
        case INSTANCE_STATE_FROZEN:
                /* No CPU while frozen; the thaw's own change writes its class. */
                return CPU_CLASS_CACHED;
        default:
                return -ENODATA; /* not running, or starting or stopping: left as it is */
        }
}

static void apply_weight(Supervisor *s, Cgroup *cg, uint32_t w, const char *what)
{
        int r = cpu_weight_apply(cg, w);

        /* -ENOENT: no cpu controller in this cgroup layout (said once at start). */
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "%s: cannot set its CPU weight to %u: %m", what, w);
        (void)s;
}

/* The host's leaf: the weight of its most important running member. */
static void group_weight(Group *g)
{
        Supervisor *s = g->sup;
        uint32_t w = 0;

        if (!g->run.sandbox || !g->run.sandbox->cgroup)
                return;
        for (size_t i = 0; i < g->n_members; i++) {
                int c = supervisor_cpu_class(instance_state(g->members[i]));
                uint32_t x;

                if (c < 0)
                        continue;
                x = cpu_class_weight(&s->cpu, (CpuClass)c);
                if (x > w)
                        w = x;
        }
        if (w > 0)
                apply_weight(s, g->run.sandbox->cgroup, w, g->label);
}

void supervisor_cpu_note(Instance *inst, InstanceState to)
{
        Supervisor *s = inst->sup;
        Group *g = inst->group;
        int c = supervisor_cpu_class(to);

        if (!s->cpu_apply)
                return; /* cella run, cella boot: no weights asked for */
        if (!g) {
                if (c >= 0 && inst->state == INSTANCE_RUNNING && inst->run.sandbox &&
                    inst->run.sandbox->cgroup)
                        apply_weight(s, inst->run.sandbox->cgroup,
                                     cpu_class_weight(&s->cpu, (CpuClass)c), inst->manifest->id);
                return;
        }
        if (g->state != INSTANCE_RUNNING)
                return;
        /* Also when a member left: the host's weight is its members' that run. */
        group_weight(g);
        if (c >= 0 && g->ctl_fd >= 0) {
                char msg[LUAHOST_PRIORITY_MSG_MAX];
                int n = luahost_priority_build(
                        inst->group_index, inst->group_run, (uint32_t)c + 1,
                        cpu_class_priority(&s->cpu, (CpuClass)c, inst->manifest->priority), msg,
                        sizeof msg);

                if (n > 0 && group_ctl_send(g, msg, (size_t)n, NULL, 0) == -EAGAIN)
                        log_warning("%s: the host of packed group %s has not read its control "
                                    "channel (an app holds its thread): its CPU class %s is not "
                                    "applied",
                                    inst->manifest->id, g->name, cpu_class_to_string((CpuClass)c));
        }
}
