/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The user's terminal under `cella run -t` (docs/cli.md "A terminal of its own"):
 * its size for the app's pty, and raw mode while the app owns the keyboard, so
 * that every key (Ctrl-C included) reaches the app's pty, whose line discipline
 * does with it what a terminal's does. The terminal is the process's, so its
 * saved state is too: restored by terminal_restore(), which the supervisor calls
 * on every way out (supervisor_free, a permission prompt) and atexit() calls too.
 */

#include <stdbool.h>

/* The window size of the first of our fds 0, 1, 2 that is a terminal, in *rows and
 * *cols; 24 x 80 (VT100's) when none is or it reports 0. */
void terminal_size(unsigned short *rows, unsigned short *cols);

/* Puts our stdin's terminal in raw mode (input: every byte as typed, no echo, no
 * signals; output processing kept, so cella's own lines still end well),
 * remembering how it was. Returns 0 (also when stdin is no terminal: nothing
 * done) or -errno. */
int terminal_raw(void);

/* Puts the terminal back as terminal_raw() found it (if it changed it); the next
 * terminal_raw() makes it raw again. Safe to call any number of times. */
void terminal_restore(void);

/* True between terminal_raw() and terminal_restore(). */
bool terminal_is_raw(void);
