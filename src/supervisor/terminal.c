/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The user's terminal under `cella run -t` (terminal.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "base/macro.h"
#include "supervisor/terminal.h"

static struct termios saved;
static bool raw, atexit_set;

void terminal_size(unsigned short *rows, unsigned short *cols)
{
        struct winsize ws = {};

        *rows = 24;
        *cols = 80;
        for (int fd = 0; fd < 3; fd++)
                if (isatty(fd) && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
                        *rows = ws.ws_row;
                        *cols = ws.ws_col;
                        return;
                }
}

int terminal_raw(void)
{
        struct termios t;

        if (raw || !isatty(STDIN_FILENO))
                return 0;
        if (tcgetattr(STDIN_FILENO, &saved) < 0)
                return negative_errno();
        if (!atexit_set) {
                atexit(terminal_restore);
                atexit_set = true;
        }
        t = saved;
        /* cfmakeraw(3), but with output processing kept (OPOST, ONLCR): cella's
         * own messages end in "\n" and must still start on a new line. */
        cfmakeraw(&t);
        t.c_oflag = saved.c_oflag;
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) < 0)
                return negative_errno();
        raw = true;
        return 0;
}

void terminal_restore(void)
{
        if (!raw)
                return;
        (void)tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
        raw = false;
}

bool terminal_is_raw(void)
{
        return raw;
}
