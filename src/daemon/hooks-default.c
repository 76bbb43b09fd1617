/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * REPLACED AT MERGE. The hooks of daemon.h that other parts of cella implement
 * (src/daemon/adopt.c: keeper; store-methods.c: store; app-methods.c: life), as weak
 * symbols that do nothing, so that this branch links before those files exist. Each
 * part's file defines its hook as a strong symbol, which the linker takes over these
 * (src/daemon is linked into cellad as objects, not as an archive: meson.build), and
 * the merge then deletes the weak one here, and this file with the last of them.
 */
#include "daemon/daemon.h"

__attribute__((weak)) int daemon_adopt(Daemon *d)
{
        (void)d;
        return 0;
}

__attribute__((weak)) int daemon_store_methods(Daemon *d)
{
        (void)d;
        return 0;
}

__attribute__((weak)) int daemon_app_methods(Daemon *d)
{
        (void)d;
        return 0;
}
