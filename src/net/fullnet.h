/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * net.internet's full network (docs/network.md, "Full network (net.internet)"): a
 * real interface in an app's own network namespace, made by pasta (Debian's passt
 * package), and nftables rules in that namespace that refuse the private, loopback,
 * link-local, metadata, unique-local, CGNAT and multicast ranges unless an exact
 * net.connect right opens one address and port.
 *
 * Order, so that the app never has an unfiltered interface: the rules first (in the
 * namespace, while it holds only loopback), then pasta, then the app runs (the
 * caller holds the app back until fullnet_start() returns). Teardown never waits:
 * fullnet_kill() sends SIGKILL and returns; the tap interface goes with pasta's last
 * fd, and Linux cleans the namespace up later, on its own time.
 *
 * Nothing here uses an event loop: the caller watches fullnet_pidfd() and calls
 * fullnet_reap() when it is readable.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* pasta's path: Debian's passt package (2023-03-09 and later). */
#define FULLNET_PASTA_PATH "/usr/bin/pasta"
/* The address pasta answers DNS on (--dns-forward) and the jail's resolv.conf names:
 * a link-local address, so that it is never a real host's; the rules let UDP port 53
 * to it through and nothing else. */
#define FULLNET_DNS_V4 "169.254.1.53"
/* The jail's /etc/resolv.conf for an app with net.internet. */
#define FULLNET_RESOLV_CONF "nameserver " FULLNET_DNS_V4 "\noptions timeout:2 attempts:2\n"
/* The nftables table the rules live in, in the app's namespace. */
#define FULLNET_NFT_TABLE "cella_fullnet"
/* How long fullnet_start() waits for pasta to have its interface up: pasta takes
 * 30-250 ms on this project's 2-CPU test machine (bench/net-fullnet). */
#define FULLNET_START_TIMEOUT_MS 5000
/* Bytes of pasta's own messages kept for an error report. */
#define FULLNET_MESSAGE_MAX 512

/* One exact address and port an explicit net.connect right opens through the
 * rules (both TCP and UDP), blocked range or not. */
typedef struct FullNetAllow {
        int family; /* AF_INET or AF_INET6 */
        union {
                struct in_addr v4;
                struct in6_addr v6;
        };
        uint16_t port; /* host byte order, 1..65535 */
} FullNetAllow;

typedef struct FullNet FullNet;

/*
 * Parses a granted right "net.connect:HOST:PORT" into *ret when HOST is a literal
 * address (IPv4 dotted quad as inet_pton(3) takes it, or IPv6, bare or in brackets)
 * and PORT a number: the only form that opens a blocked address. Returns 1 (filled),
 * 0 (another right, a name, a pattern or "*": opens nothing here).
 */
int fullnet_allow_parse(const char *right, FullNetAllow *ret);

/*
 * The nft(8) script of the rules: one table, FULLNET_NFT_TABLE, family inet, with an
 * output chain (policy accept) that accepts loopback, UDP/53 to FULLNET_DNS_V4,
 * IPv6 neighbour discovery, then each of allow[0..n_allow) (TCP and UDP), then
 * rejects (ICMP administratively prohibited, so a connect fails at once) every
 * address of the blocked ranges. drop_all: instead, a chain that rejects everything
 * but loopback (a revoke's first step). *ret (caller frees). Returns 0 or -ENOMEM.
 *
 * The ranges are the classes of docs/network.md, "Addresses never reachable":
 * RFC 1918, loopback (RFC 1122), link-local and the metadata addresses (RFC 3927;
 * 169.254.169.254, fd00:ec2::254), CGNAT (RFC 6598), "this network" (RFC 1122),
 * IETF protocol assignments (RFC 6890), benchmarking (RFC 2544), multicast (RFC
 * 5771, RFC 4291), reserved and broadcast (RFC 1112), unique-local (RFC 4193),
 * site-local (RFC 3879), the IPv6 loopback and unspecified, discard-only (RFC 6666),
 * and every IPv4 range again in its IPv4-mapped, IPv4-compatible, NAT64 (RFC 6052)
 * and 6to4 (RFC 3056) forms.
 */
int fullnet_rules(const FullNetAllow *allow, size_t n_allow, bool drop_all, char **ret);

/*
 * Loads script (nft syntax) into the network namespace netns_fd, replacing
 * FULLNET_NFT_TABLE atomically (one transaction: the table is deleted and made
 * again), with libnftables from a thread that joined the namespace (setns(2) of
 * CLONE_NEWNET is per thread). Returns once nft has committed the transaction (the
 * thread frees libnftables' context after, detached: that takes 8-13 ms of waiting
 * for the kernel, bench/net-fullnet). Needs CAP_NET_ADMIN over the namespace. Returns
 * 0, or a negative errno with nft's message in err (errlen bytes, NUL-terminated).
 */
int fullnet_load_rules(int netns_fd, const char *script, char *err, size_t errlen);

/* What fullnet_start() makes. */
typedef struct FullNetOptions {
        const char *pasta_path; /* NULL: FULLNET_PASTA_PATH */
        const FullNetAllow *allow;
        size_t n_allow;
        int timeout_ms; /* 0: FULLNET_START_TIMEOUT_MS */
} FullNetOptions;

/*
 * Gives the network namespace of process pid (a sandbox's init: /proc/<pid>/ns/net)
 * its full network: loads the rules (fullnet_rules()), then starts pasta in the
 * foreground, as a child of the caller, against that namespace (passed as an open fd,
 * /proc/self/fd/N, since pasta cannot open another process's /proc/<pid>/ns/net once
 * it dropped its capabilities), with no port forwarded either way (-t none -u none
 * -T none -U none), --no-map-gw (the gateway address is not the host's loopback),
 * --config-net (addresses, routes, link up) and --dns-forward FULLNET_DNS_V4, and
 * waits (at most o->timeout_ms) for pasta's pid file, which pasta writes once the
 * interface is configured. pasta runs as uid 0 with its capabilities cut down by
 * itself to CAP_SYS_ADMIN and CAP_NET_BIND_SERVICE (it needs CAP_SYS_ADMIN over the
 * namespace to enter it: docs/security.md, "Full network"), in an empty mount
 * namespace under its own seccomp filter; its bounding set is cut to what it uses
 * before exec, and it dies with the calling thread (PR_SET_PDEATHSIG). Returns 0
 * with *ret, or a negative errno with the reason in err (pasta's own message when it
 * failed: "External interface not usable" on a host without a default route).
 */
int fullnet_start(pid_t pid, const FullNetOptions *o, FullNet **ret, char *err, size_t errlen);

/* pasta's pid (0 once reaped), and a pidfd that is readable once it has exited (for
 * the caller's poll; open until fullnet_free(), -EBADF once reaped). */
pid_t fullnet_pid(const FullNet *n);
int fullnet_pidfd(const FullNet *n);
/* Nanoseconds (CLOCK_MONOTONIC) fullnet_start() took: the rules, and pasta until its
 * interface was up. */
uint64_t fullnet_rules_ns(const FullNet *n);
uint64_t fullnet_pasta_ns(const FullNet *n);

/*
 * Takes the network away at once (a revoke): loads the drop-all rules into the
 * namespace first (netns_fd, or -1 when the namespace is gone), so that nothing more
 * leaves even before pasta has died, then SIGKILLs pasta. Does not wait for its
 * exit. Returns 0, or a negative errno when the rules could not be loaded (pasta is
 * killed all the same).
 */
int fullnet_cut(FullNet *n, int netns_fd);

/* SIGKILLs pasta if it still runs; does not wait (an app's exit is never delayed by
 * its network). */
void fullnet_kill(FullNet *n);

/* SIGKILLs pasta and waits for its exit, reaping it (pid 0 after; the pidfd stays
 * open until fullnet_free()). For a caller about to exec itself, which could not
 * reap it after; never on an app's exit path. Returns 0 or a negative errno. */
int fullnet_kill_wait(FullNet *n);

/*
 * Reaps pasta without blocking. Returns 1 with its wait status in *ret_status (as
 * waitpid(2)'s) and its last messages (NUL-terminated, possibly empty) in msg (msglen
 * bytes) once it has exited, 0 while it runs, or a negative errno.
 */
int fullnet_reap(FullNet *n, int *ret_status, char *msg, size_t msglen);

/* Kills pasta if it runs (SIGKILL) and reaps it (waiting for a killed process's
 * exit: callers on an app's exit path fullnet_kill() and free once fullnet_reap()
 * said 1), closes everything and frees n. Returns NULL. */
FullNet *fullnet_free(FullNet *n);

/* For a process about to exit (a kernel's end): kills pasta if it runs (SIGKILL) and
 * frees n without waiting for pasta's exit, which takes 30-50 ms (its tap's
 * teardown, bench/net-fullnet) and would delay the last app's exit as the user sees
 * it; the zombie goes to init (or the subreaper) with our exit, which reaps it.
 * Returns NULL. */
FullNet *fullnet_abandon(FullNet *n);
