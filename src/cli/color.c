/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/color.h"

bool cli_color(int fd)
{
        const char *no = getenv("NO_COLOR"), *term = getenv("TERM");

        if (no && no[0])
                return false;
        if (term && strcmp(term, "dumb") == 0)
                return false;
        return isatty(fd) == 1;
}

const char *cli_state_color(const char *state)
{
        static const struct {
                const char *state, *esc;
        } colors[] = {
                {"foreground", "\033[32m"}, {"visible", "\033[36m"}, {"service", "\033[36m"},
                {"frozen", "\033[34m"},     {"cached", "\033[34m"},  {"starting", "\033[33m"},
                {"stopping", "\033[33m"},   {"failed", "\033[31m"},
        };

        for (size_t i = 0; state && i < sizeof colors / sizeof *colors; i++)
                if (strcmp(state, colors[i].state) == 0)
                        return colors[i].esc;
        return "";
}
