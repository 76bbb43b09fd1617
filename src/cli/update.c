/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella update: replaces an installed app with a newer version signed by the same
 * key (docs/store.md, "Signing" and "Versions"); the same path as cella install
 * (install.c), with org.cella.Update.
 */
#include "cli/cli.h"

int cli_update(int argc, char **argv)
{
        return cli_install_or_update(argc, argv, true);
}
