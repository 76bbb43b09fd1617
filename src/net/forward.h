/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Port forwarding (docs/network.md, "Port forwarding"): host ports that cellad
 * listens on, each connection (TCP) or client (UDP) forwarded to 127.0.0.1:<app port>
 * inside one app's network namespace, bytes moved by the relay (net/relay.h).
 *
 * One NetForward per running app that has forwards. It opens the app's namespace
 * (/proc/<sandbox init>/ns/net) once and starts one thread that enters it once
 * (setns(CLONE_NEWNET)) and only makes sockets there: a socket keeps the namespace
 * it was made in, so connect(), send() and the relay work on it from any thread. The
 * thread keeps a few sockets made ahead (NET_FORWARD_POOL_TCP, _UDP), so that an
 * accepted connection costs a mutex and no wakeup of the thread.
 *
 * UDP: per client address, a socket of the host bound to the forward's address and
 * port (SO_REUSEPORT) and connected to the client, and a socket into the app
 * connected to 127.0.0.1:<app port>, relayed as a datagram pair: a NAT table with an
 * idle timeout (NET_FORWARD_UDP_IDLE_MS) and a bound (NET_FORWARD_UDP_CLIENTS_MAX).
 *
 * Every forwarded connection (a UDP client's flow) gets one audit record when it
 * ends: the forward, the client's address, bytes each way, duration, how it ended.
 *
 * Threads: everything here runs on the loop given to net_forward_new(), except the
 * socket thread, which touches nothing but its pool.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "net/relay.h"

/* Sockets made ahead in the app's namespace, per kind. */
#define NET_FORWARD_POOL_TCP 8u
#define NET_FORWARD_POOL_UDP 4u
/* Connections of one TCP forward at once; past it new ones are closed at accept (and
 * counted). 4096: nginx's worker_connections default is 512 per worker, a port of
 * one app at 8 workers fits with room to spare. */
#define NET_FORWARD_CONNS_MAX 4096u
/* Connections and UDP flows of every forward of the process at once: each holds up
 * to 6 fds (two sockets, the relay's two pipes), so 16384 of them stay well within
 * the kernel's raised RLIMIT_NOFILE (2^18, supervisor-internal.h), leaving room
 * for the apps' channels and logs whatever clients of the network do. Past it new
 * connections are closed at accept, new UDP clients dropped (counted). */
#define NET_FORWARD_CONNS_TOTAL_MAX 16384u
/* A UDP client's flow ends after this long without a datagram either way: Linux
 * conntrack's nf_conntrack_udp_timeout (30 s). */
#define NET_FORWARD_UDP_IDLE_MS 30000u
/* UDP clients of one forward at once; a datagram from another is dropped (counted). */
#define NET_FORWARD_UDP_CLIENTS_MAX 1024u
/* A connection into the app that is not established after this long is given up (the
 * client is reset; recorded "refused", ETIMEDOUT): nginx's proxy_connect_timeout
 * default (60 s). It waits that long only when the app's listen backlog is full
 * (the kernel drops the SYN); a port nothing listens on refuses at once. */
#define NET_FORWARD_CONNECT_TIMEOUT_MS 60000u
/* A numeric address and its NUL (INET6_ADDRSTRLEN). */
#define NET_FORWARD_ADDRESS_MAX 46u

typedef struct NetForward NetForward;

/* One forward. */
typedef struct NetForwardSpec {
        uint16_t host; /* 1..65535: the port of the host */
        uint16_t app;  /* 1..65535: the port on 127.0.0.1 in the app's namespace */
        bool udp;
        /* The host address to listen on (numeric); "": every address (:: dual-stack,
         * or 0.0.0.0 where the host has no IPv6) */
        char address[NET_FORWARD_ADDRESS_MAX];
} NetForwardSpec;

/* What a forward is now. */
typedef enum NetForwardState {
        NET_FORWARD_OPEN,        /* listening */
        NET_FORWARD_NOT_GRANTED, /* its net.listen right is not held (or was revoked) */
        NET_FORWARD_FAILED,      /* the host socket could not be opened (why says) */
} NetForwardState;

/* Writes one audit record for app_id (fields: a new object, stolen). */
typedef void (*NetForwardRecordFn)(void *userdata, const char *app_id, json_t *fields);

typedef struct NetForwardOptions {
        uv_loop_t *loop;
        NetRelay *relay; /* shared, not owned; must outlive every NetForward on it */
        const char *app_id;
        pid_t pid; /* the sandbox's init (its /proc/<pid>/ns/net) */
        int pidfd; /* of that init: proves pid was not reused while the namespace opened */
        NetForwardRecordFn record;
        void *userdata;
        unsigned udp_idle_ms;        /* a UDP flow's idle timeout; 0: NET_FORWARD_UDP_IDLE_MS */
        unsigned connect_timeout_ms; /* 0: NET_FORWARD_CONNECT_TIMEOUT_MS */
} NetForwardOptions;

/*
 * Opens the app's network namespace and starts its socket thread. Returns 0 and
 * *ret, -ESRCH (the process is gone), -ENOMEM, or the -errno of open(2) or
 * pthread_create(3); *ret_why (a static phrase) says which step failed.
 */
int net_forward_new(const NetForwardOptions *o, NetForward **ret, const char **ret_why);

/*
 * Closes every listener and every connection at once (their audit records say
 * "closed" with reason, e.g. "app stopped"), stops the thread and frees f. NULL is
 * a no-op.
 */
void net_forward_free(NetForward *f, const char *reason);

/*
 * Adds a forward. With state NET_FORWARD_OPEN it listens now: -EADDRINUSE (the
 * host port is in use: by another forward of this process, named in why, or by
 * another program), -EACCES, -EADDRNOTAVAIL (address is not the host's), -EEXIST (f
 * has a forward of that host port and protocol already), -EINVAL, -ENOMEM, -EMFILE;
 * why (why_size bytes) holds one English sentence. keep: on failure, keep the
 * forward, listed NET_FORWARD_FAILED with why (a manifest's forward, tried again by
 * net_forward_recheck()). With state NET_FORWARD_NOT_GRANTED it is listed, not
 * opened. manifest: the forward came from the manifest (listed so). Returns 0 or
 * -errno.
 */
int net_forward_add(NetForward *f, const NetForwardSpec *spec, NetForwardState state, bool manifest,
                    bool keep, char *why, size_t why_size);

/*
 * Removes the forward of host port and protocol: its listener and connections
 * close at once (records say "closed", reason "removed"). Returns 0 or -ENOENT.
 */
int net_forward_remove(NetForward *f, uint16_t host, bool udp);

/*
 * Asks allowed(userdata, host port) of every forward: an open one not allowed closes
 * with its connections at once (records say "closed", reason "revoked") and is
 * listed NET_FORWARD_NOT_GRANTED; a forward not open that is allowed is opened
 * again (a failure is listed NET_FORWARD_FAILED). allowed returns true to allow.
 */
void net_forward_recheck(NetForward *f, bool (*allowed)(void *userdata, uint16_t host),
                         void *userdata);

/* The forwards, as `cella port ls --json` shows them: an array of objects {host,
 * app, proto, address, state, why, origin, connections, accepted, dropped}. NULL:
 * no memory. */
json_t *net_forward_list(NetForward *f);

/* How many forwards f has (any state). */
size_t net_forward_count(const NetForward *f);

/* "tcp" or "udp". */
const char *net_forward_proto_to_string(bool udp);
/* "open", "not-granted", "failed". */
const char *net_forward_state_to_string(NetForwardState s);
