/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * REPLACED AT MERGE of the control API v2 (h-control): until then cellad serves only
 * the kernel's run/<pid>.sock of API v1; methods.c (cellad.sock, Ping, Version,
 * Shutdown) needs control_listen_path() and control_add_methods().
 */
#include "base/log.h"
#include "daemon/daemon-internal.h"

int daemon_control_setup(Daemon *d)
{
        d->control = supervisor_control(d->sup);
        log_warning("the control API v2 is not in this build: %s is not served", d->socket_path);
        return 0;
}

void daemon_control_done(Daemon *d)
{
        d->control = NULL;
}
