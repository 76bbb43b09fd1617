/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A small rtnetlink client (rtnetlink(7)) for the app networks (docs/network.md,
 * "App networks"): network namespaces made and entered by the calling thread,
 * bridges, veth pairs whose ends are born in two namespaces, IPv4 addresses and
 * link state. Every request waits for the kernel's acknowledgement (NLM_F_ACK) and
 * returns its errno, so a refusal is never silent. No library: the handful of
 * messages cella sends are built here (libmnl is not a dependency of cella).
 *
 * Namespaces: a netlink socket acts in the network namespace of the thread that
 * made it (netlink(7)), for its whole life. rtnl_open_in() enters the target
 * namespace with setns(2) on the calling thread only, makes the socket, and
 * returns to the thread's own namespace before it returns; cellad is root of the
 * user namespace that owns every namespace involved (the apps' and the hubs').
 */

#include <stdbool.h>
#include <stdint.h>

/*
 * An rtnetlink socket in the network namespace ns_fd names (an nsfs fd, or a pidfd:
 * its process's network namespace, setns(2)); ns_fd < 0: the caller's. If
 * ret_ns_fd is not NULL, *ret_ns_fd gets an nsfs fd of that namespace (for
 * IFLA_NET_NS_FD). Returns the socket (close it) or -errno. If the thread cannot
 * return to its own namespace (never expected: the caller's own), the process
 * aborts rather than go on in another.
 */
int rtnl_open_in(int ns_fd, int *ret_ns_fd);

/*
 * A new network namespace, made by the calling thread with unshare(2) and left at
 * once: the thread is back in its own before this returns. Its loopback stays down
 * (nothing runs there), and IPv6 is off for every link made in it (no address at
 * all, not even link-local). Returns an nsfs fd (the namespace lives while some fd or
 * process holds it) or -errno.
 */
int rtnl_netns_new(void);

/* The ifindex of the link named name (< IFNAMSIZ bytes), or -ENODEV, -errno. */
int rtnl_link_index(int rtnl, const char *name);

/* Makes a bridge named name (no STP: ports forward at once). Returns its ifindex or -errno
 * (-EEXIST: a link of that name exists). */
int rtnl_bridge_new(int rtnl, const char *name);

/*
 * Makes a veth pair: name in the socket's namespace, peer in the namespace
 * peer_ns_fd names (an nsfs fd), where it is born (it never appears in the
 * socket's). Returns name's ifindex or -errno (-EEXIST either name taken where it
 * is made, -EOPNOTSUPP no veth driver).
 */
int rtnl_veth_new(int rtnl, const char *name, const char *peer, int peer_ns_fd);

/* Sets ifindex's master (a bridge's ifindex; 0: none) and brings it up. Returns 0 or
 * -errno. */
int rtnl_link_up(int rtnl, int ifindex, int master);

/* Adds addr/prefix (IPv4, network byte order, prefix 1-32) to ifindex, as a
 * permanent address (the connected route follows). Returns 0 or -errno. */
int rtnl_addr_add(int rtnl, int ifindex, uint32_t addr_be, unsigned prefix);

/* Deletes link ifindex (a veth: its peer goes with it). Returns 0 or -errno (-ENODEV
 * gone already). */
int rtnl_link_del(int rtnl, int ifindex);
