/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * App networks (docs/network.md, "App networks"): the apps holding net.group:NAME
 * share an IPv4 network NAME. Each network has a hub: a network namespace of its
 * own, made by cellad, holding one bridge and nothing else (no address, no route,
 * no process). A member app gets one veth pair per network: one end in the hub,
 * a port of the bridge, the other end born in the app's network namespace, named
 * "cg-NAME", with an address of the network's subnet. Nothing else has an
 * interface on that bridge, not the host nor any other namespace, so only the
 * members reach each other (and the hub namespace is no router: there is no path
 * between two networks).
 *
 * Addresses: the networks' subnets are carved out of one private range
 * (NetGroupsConfig, cellad.conf's net.group.range, default 10.213.0.0/16), one
 * subnet of net.group.prefix bits (default /24) per network, the first free one when
 * the network is made; the members' addresses from .2 up, handed out round-robin
 * (an address just freed is the last one given again, so that a stale neighbour
 * entry of a member that left never points at a newcomer), kept for as long as the
 * member runs.
 *
 * Names: every member app's /etc/hosts is a file cellad writes (netgroups_hosts_file())
 * and binds read-only into the jail; it lists localhost, the app's own hostname, and
 * "<address> <app id> <app id>.<network>" for every member of every network the app
 * is in, rewritten in place (same inode: the bind keeps showing it) when a member
 * joins or leaves.
 *
 * Threads: every function here runs on the caller's loop thread. Only the deletion
 * of an interface on an app's exit runs on libuv's threadpool, so that an app's exit
 * never waits for the kernel's veth teardown.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* Networks one app may be in at once: net.group is a normal right (granted at install),
 * so a manifest could otherwise ask for every subnet of the range, and make a hub for
 * each at its start on cellad's loop. */
#define NETGROUPS_PER_APP_MAX 8

/* "cg-" and the network's name (or its subnet's number, see netgroups_join()). */
#define NETGROUPS_IFNAME_PREFIX "cg-"
/* Default range and subnet size (docs/config.md, net.group.*). */
#define NETGROUPS_RANGE_DEFAULT        UINT32_C(0x0ad50000) /* 10.213.0.0 */
#define NETGROUPS_RANGE_PREFIX_DEFAULT 16u
#define NETGROUPS_PREFIX_DEFAULT       24u

typedef struct NetGroupsConfig {
        uint32_t range;        /* first address of the range, host byte order */
        unsigned range_prefix; /* its prefix length, 8-30 */
        unsigned net_prefix;   /* each network's prefix length: range_prefix to 30, at
                                  most 16 more than range_prefix (65536 networks) */
} NetGroupsConfig;

typedef struct NetGroups NetGroups;

/*
 * The app networks of one kernel. hosts_dir: a directory (made 0755 if missing) where
 * the member apps' hosts files live; loop: where exit-time deletions report back. c
 * NULL: the defaults. Returns 0 and *ret, or -errno (-EINVAL a bad config).
 */
int netgroups_new(const NetGroupsConfig *c, const char *hosts_dir, uv_loop_t *loop,
                  NetGroups **ret);

/* Frees every network: closes the hubs (the kernel then frees their namespaces,
 * links and all) and unlinks the hosts files. Takes NULL; returns NULL. */
NetGroups *netgroups_free(NetGroups *g);

/*
 * The hosts file of app_id (an app id, manifest.h's syntax), made now with the
 * localhost lines and hostname (the jail's, < 64 bytes), and its members' lines if
 * the app is already in a network. *ret_path (free it) is the host path to bind
 * read-only at /etc/hosts. Returns 0 or -errno.
 */
int netgroups_hosts_file(NetGroups *g, const char *app_id, const char *hostname, char **ret_path);

/*
 * Puts app_id, whose sandbox's init is pidfd (a pidfd: its network namespace is the
 * app's), into network (a net.group scope: [a-z][a-z0-9_-]{0,31}), making the
 * network's hub first if it has no member. The interface in the app's namespace is
 * "cg-<network>" when that fits IFNAMSIZ, else "cg-<subnet number>". Rewrites every
 * member's hosts file. Returns 0 (also when app_id is in network already), or -errno
 * with *ret_why (static English) saying which step failed: -ENOSPC no subnet or no
 * address left, -EMLINK app_id is in NETGROUPS_PER_APP_MAX networks already, -EOPNOTSUPP no veth or
 * bridge driver, -ESRCH the app is gone.
 */
int netgroups_join(NetGroups *g, const char *app_id, int pidfd, const char *network,
                   const char **ret_why);

/*
 * Takes app_id out of network (NULL: of every network it is in). revoked: its right
 * was revoked while it runs: its interface is deleted now, before this returns (the
 * app cannot send one more packet on it). Otherwise (the app stopped) the
 * deletion is queued to the threadpool and this returns at once; the kernel would
 * free the interface with the app's namespace anyway. The members' hosts files are
 * rewritten, the network's hub freed when it has no member left. Returns the number
 * of networks left.
 */
int netgroups_leave(NetGroups *g, const char *app_id, const char *network, bool revoked);

/* Forgets app_id's hosts file (unlinks it): after its last netgroups_leave(), when
 * its run has ended. */
void netgroups_forget_app(NetGroups *g, const char *app_id);

/* Whether app_id is in network now. */
bool netgroups_is_member(NetGroups *g, const char *app_id, const char *network);

/* The networks app_id is in, NULL-terminated (free with strv_free), or NULL (none, or
 * out of memory). */
char **netgroups_of(NetGroups *g, const char *app_id);

/*
 * The networks as JSON (docs/api.md, org.cella.NetList): [{"name", "subnet",
 * "interface_prefix", "hub": {"netns_inode", "bridge"}, "created_ms", "members":
 * [{"app", "address", "interface", "joined_ms"}]}], only network when not NULL (an
 * empty array when there is no such network). NULL: out of memory.
 */
json_t *netgroups_json(NetGroups *g, const char *network);

/* app_id's memberships as JSON: [{"network", "address", "interface"}] (an empty array
 * when it is in none; g NULL: none). NULL: out of memory. */
json_t *netgroups_app_json(NetGroups *g, const char *app_id);

/* Timings, for `cella net inspect` and bench/net-groups: microseconds. */
typedef struct NetGroupsStats {
        uint64_t joins, leaves, hubs_made, hubs_freed;
        uint64_t last_join_us, max_join_us;     /* netgroups_join(): veth, address, up */
        uint64_t last_hub_us;                   /* a hub's namespace and bridge */
        uint64_t last_leave_us, max_leave_us;   /* netgroups_leave() on the caller's thread */
        uint64_t last_delete_us, max_delete_us; /* the veth's deletion (threadpool or inline) */
        unsigned deletions_pending;
} NetGroupsStats;

void netgroups_stats(NetGroups *g, NetGroupsStats *ret);
