/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * fds over a Unix socket (SCM_RIGHTS, unix(7)) outside the wire protocol: one fd
 * with a one-byte payload for the simple hand-overs (the app's pty master from the
 * sandbox to the kernel, pty.c and instance.c), and a fixed-size message with up
 * to FD_MSG_MAX_FDS fds (the sandbox's setup messages, spawn.c; the keeper's,
 * keeper/protocol.c). The protocol's own frames carry their fds in channel.c.
 */

#include <stddef.h>
#include <sys/types.h>

/* Sends fd over sock (MSG_NOSIGNAL). Returns 0 or -errno (-EIO: a short send). */
int fd_send(int sock, int fd);

/*
 * Receives one fd from sock without blocking (MSG_DONTWAIT), close-on-exec.
 * Returns the fd, or -errno of recvmsg (-EAGAIN: nothing yet), or -EBADMSG for a
 * message that is not exactly one byte with exactly one fd (any fd that came
 * with it is closed).
 */
int fd_receive(int sock);

/* The most fds fd_msg_send() and fd_msg_recv() carry in one message. */
#define FD_MSG_MAX_FDS 16

/*
 * Sends the message buf (size bytes) with fds[0..n) attached (SCM_RIGHTS; not
 * closed) in one sendmsg(), flags | MSG_NOSIGNAL, EINTR retried. Returns the bytes
 * sent (a short send is the caller's to judge), or -errno: -E2BIG for n over
 * FD_MSG_MAX_FDS, -EAGAIN on a full non-blocking socket, -EPIPE.
 */
ssize_t fd_msg_send(int sock, const void *buf, size_t size, const int *fds, size_t n, int flags);

/*
 * Receives one message of size bytes into buf with the fds it carries
 * (close-on-exec) into fds[0..max), *ret_n of them (max <= FD_MSG_MAX_FDS), with
 * recvmsg() flags | MSG_CMSG_CLOEXEC (MSG_DONTWAIT for a socket a poll said is
 * readable), EINTR retried. Returns size (the whole message and its fds), 0 when
 * the peer closed (no fds), -EBADMSG for a message of another size or with more
 * fds than max (MSG_CTRUNC), every fd that came with it closed, or -errno of
 * recvmsg(). *ret_n is 0 unless size is returned.
 */
ssize_t fd_msg_recv(int sock, void *buf, size_t size, int *fds, size_t max, size_t *ret_n,
                    int flags);
