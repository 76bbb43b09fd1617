/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Colour in the CLI's tables: only on a terminal, never with NO_COLOR set to a
 * non-empty value (https://no-color.org: "Command-line software which adds ANSI
 * color to its output by default should check for a NO_COLOR environment variable
 * that, when present and not an empty string (regardless of its value), prevents
 * the addition of ANSI color"), and not on TERM=dumb. The escapes are cella's own,
 * never an app's text (that goes through base/termsafe).
 */

#include <stdbool.h>

#define CLI_COLOR_RESET "\033[0m"
#define CLI_COLOR_BOLD  "\033[1m"

/* Whether output to fd gets colour (the rules above). */
bool cli_color(int fd);

/* The escape that colours an app state word (docs/design.md "App states"): green
 * foreground, cyan visible and service, blue frozen and cached, yellow starting and
 * stopping, red failed, "" for the others (and for anything else). */
const char *cli_state_color(const char *state);
