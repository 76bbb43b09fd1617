/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Listening sockets made inside another network namespace (docs/network.md, "The
 * proxy"): a socket belongs to the namespace of the thread that created it, for its
 * whole life, whichever namespace later accepts on it. So cellad makes the proxy's
 * listener in an app's namespace from a short-lived thread of its own that joins
 * that namespace (setns(2) on a network namespace changes only the calling thread),
 * and keeps using it from its loop in its own namespace. The app never holds it.
 */

#include <stdint.h>

/*
 * Makes TCP listening sockets on 127.0.0.1:port and [::1]:port (IPV6_V6ONLY) in the
 * network namespace netns_fd names (an fd of /proc/<pid>/ns/net, or a pidfd), from a
 * thread that joins it and ends. Non-blocking, close-on-exec, backlog 128.
 * ret_fds[0] is the IPv4 socket; ret_fds[1] the IPv6 one, or -1 when the namespace
 * has no ::1 (IPv6 disabled). Returns 0, or -errno: of setns (EPERM: no
 * CAP_SYS_ADMIN over the namespace), of the IPv4 socket's bind (EADDRINUSE: the port
 * is taken in that namespace), or of pthread_create. Takes ~50 us (bench/net-proxy).
 */
int net_listen_in_netns(int netns_fd, uint16_t port, int ret_fds[2]);
