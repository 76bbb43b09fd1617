/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The relay (docs/network.md, "The relay"): moves bytes between two sockets, one
 * the app holds or reaches (its end of a socketpair, a connection accepted in its
 * network namespace) and one the kernel made (a connection to a vetted address, a
 * connection into the app's namespace for a port forward). Every byte an app sends
 * or receives through the kernel goes through here, so the relay is where a
 * connection is counted, bounded and cut.
 *
 * One thread of its own with an epoll set, never cellad's loop: a bulk transfer
 * never delays a call. Stream pairs move with splice(2) through a pipe per direction
 * (no copy to user space); datagram pairs with recvmmsg/sendmmsg, one datagram at a
 * time per message. Each wakeup moves at most one pipe's worth per direction before
 * going back to epoll, so one busy pair cannot starve the others. Half-close is
 * passed on (shutdown(SHUT_WR) when one side reaches EOF); the pair ends when both
 * directions are done, on an error or reset of either side, or on net_relay_close().
 *
 * Threads: every function here is called from the loop thread that made the relay;
 * done callbacks run on that loop (uv_async), never on the relay thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct NetRelay NetRelay;

/* How a pair ended. */
typedef enum NetRelayEnd {
        NET_RELAY_END_EOF,    /* both directions reached EOF: the ordinary end */
        NET_RELAY_END_RESET,  /* either side was reset or failed (error holds the errno) */
        NET_RELAY_END_CLOSED, /* net_relay_close(): revoked, stopped, limit reached */
} NetRelayEnd;

typedef struct NetRelayStats {
        uint64_t bytes_a_to_b; /* bytes (datagram payload bytes for datagram pairs) */
        uint64_t bytes_b_to_a;
        uint64_t started_ns; /* CLOCK_MONOTONIC, ns, at net_relay_add() */
        uint64_t ended_ns;   /* CLOCK_MONOTONIC, ns; 0 while the pair runs */
        NetRelayEnd end;
        int error; /* errno (> 0) for NET_RELAY_END_RESET; 0 otherwise */
} NetRelayStats;

/* Called once per pair, on the loop, after both fds are closed. */
typedef void (*NetRelayDoneFn)(void *userdata, uint64_t id, const NetRelayStats *st);

/* One pair to move. The prefixes are written first (copied at net_relay_add()): bytes
 * for b before anything read from a (a proxy's rewritten request head), bytes for a
 * before anything read from b (a proxy's "200 Connection established"). */
typedef struct NetRelayPair {
        int fd_a, fd_b; /* taken by net_relay_add(), even on failure; made non-blocking */
        bool datagram;  /* both are datagram sockets (UDP, AF_UNIX SOCK_DGRAM) */
        const void *prefix_to_b;
        size_t n_prefix_to_b; /* bytes, at most NET_RELAY_PREFIX_MAX */
        const void *prefix_to_a;
        size_t n_prefix_to_a; /* bytes, at most NET_RELAY_PREFIX_MAX */
        NetRelayDoneFn done;
        void *userdata;
} NetRelayPair;

/* Bytes of one prefix: an HTTP request head (16 KiB, nginx's large_client_header_buffers
 * default 4 x 8k rounded to what one proxy read takes) plus what came after it. */
#define NET_RELAY_PREFIX_MAX (64u * 1024u)

/*
 * Starts the relay thread, its done callbacks delivered on loop. Returns 0 and *ret,
 * -ENOMEM, or -errno of epoll_create1/pipe2/pthread_create.
 */
int net_relay_new(uv_loop_t *loop, NetRelay **ret);

/*
 * Ends every pair (NET_RELAY_END_CLOSED, done callbacks run before it returns),
 * stops the thread and frees r. NULL is a no-op.
 */
void net_relay_free(NetRelay *r);

/*
 * Adds a pair; it starts moving at once. Returns 0 and *ret_id (from 1, never reused
 * by r), -EINVAL (a bad fd, a prefix over NET_RELAY_PREFIX_MAX, done NULL), -ENOMEM,
 * -EMFILE (no fds for the pipes) or -errno of epoll_ctl. On failure both fds are
 * closed and done is not called.
 */
int net_relay_add(NetRelay *r, const NetRelayPair *pair, uint64_t *ret_id);

/*
 * Ends pair id now: both sockets are shut down (the peer sees EOF or a reset at once)
 * and closed; done runs later on the loop with NET_RELAY_END_CLOSED. Returns 0, or
 * -ENOENT (no such pair, or it has ended already).
 */
int net_relay_close(NetRelay *r, uint64_t id);

/* The counters of pair id so far. Returns 0, or -ENOENT. */
int net_relay_stats(NetRelay *r, uint64_t id, NetRelayStats *ret);
