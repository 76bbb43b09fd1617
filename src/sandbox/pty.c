/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The app's own terminal (sandbox-internal.h, pty_make()): a pty of the sandbox's
 * own devpts instance (mount.c), made by the app's process before its execve, so
 * the pty belongs to the app's uid inside the jail and `tty` names it there
 * (/dev/pts/0), as podman's and crun's --console-socket do. The master goes to the
 * caller over the socket it gave (SCM_RIGHTS); the slave becomes the app's
 * controlling terminal and its stdin, stdout and stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "base/macro.h"
#include "sandbox/sandbox-internal.h"

int pty_make(int sock, unsigned short rows, unsigned short cols)
{
        struct winsize ws = {.ws_row = rows ?: 24, .ws_col = cols ?: 80};
        int master, slave, unlock = 0, r;

        master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0)
                return negative_errno();
        /* TIOCGPTPEER (Linux 4.13): the slave from the master itself, no path
         * lookup in /dev/pts between the two. */
        if (ioctl(master, TIOCSPTLCK, &unlock) < 0 ||
            (slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
                r = negative_errno();
                close(master);
                return r;
        }
        (void)ioctl(master, TIOCSWINSZ, &ws);
        r = fd_send(sock, master);
        close(master);
        if (r < 0)
                goto fail;
        /* A session of its own, whose controlling terminal the slave is: Ctrl-C
         * typed there is SIGINT to the app's foreground process group. */
        if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0) {
                r = negative_errno();
                goto fail;
        }
        return slave;
fail:
        close(slave);
        return r;
}
