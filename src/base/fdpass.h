/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One fd over a Unix socket (SCM_RIGHTS, unix(7)) with a one-byte payload, for the
 * simple hand-overs outside the wire protocol (the app's pty master from the
 * sandbox to the kernel, pty.c and instance.c). The protocol's own frames carry
 * their fds in channel.c.
 */

/* Sends fd over sock (MSG_NOSIGNAL). Returns 0 or -errno (-EIO: a short send). */
int fd_send(int sock, int fd);

/*
 * Receives one fd from sock without blocking (MSG_DONTWAIT), close-on-exec.
 * Returns the fd, or -errno of recvmsg (-EAGAIN: nothing yet), or -EBADMSG for a
 * message that is not exactly one byte with exactly one fd (any fd that came
 * with it is closed).
 */
int fd_receive(int sock);
