/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* supervisor/exec.h: the kernel's side of `cella exec`. */
#include <errno.h>

#include "audit/audit.h"
#include "supervisor/exec.h"
#include "supervisor/supervisor-internal.h"

int supervisor_exec_target(Supervisor *s, const char *id, Sandbox **ret, InstanceState *ret_state)
{
        Instance *inst = supervisor_find(s, id);
        InstanceState st;

        if (!inst)
                return -ENOENT;
        st = instance_state(inst);
        *ret_state = st;
        if (inst->group)
                return -EOPNOTSUPP;
        if (inst->state != INSTANCE_RUNNING || !inst->run.sandbox || inst->run.sandbox->exited)
                return -EAGAIN;
        switch (st) {
        case INSTANCE_STATE_FOREGROUND:
        case INSTANCE_STATE_VISIBLE:
        case INSTANCE_STATE_SERVICE:
        case INSTANCE_STATE_BACKGROUND:
                *ret = inst->run.sandbox;
                return 0;
        default:
                return -EAGAIN;
        }
}

int supervisor_exec_proxy_env(Supervisor *s, const char *id, char ***envp)
{
        Instance *inst = supervisor_find(s, id);
        uint16_t port;

        if (!inst || !inst->proxy)
                return 0;
        port = netproxy_port(s->o.net_proxy_port, inst->manifest);
        return port ? netproxy_env(envp, inst->manifest->env, port) : 0;
}

void supervisor_exec_audit(Supervisor *s, const char *id, json_t *fields)
{
        supervisor_audit(s, id, AUDIT_EVENT_LIFECYCLE, fields);
}

void supervisor_control_audit(Supervisor *s, const char *id, json_t *fields)
{
        supervisor_audit(s, id, AUDIT_EVENT_CONTROL, fields);
}
