/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The per-app proxy (docs/network.md, "The proxy"): for an app that asks for a
 * net.connect right and runs in a sandbox of its own, cellad listens on
 * 127.0.0.1:<port> and [::1]:<port> inside the app's network namespace (the
 * listener is made before the app runs: SandboxSpec.net_ready, src/net/nslisten.h)
 * and announces it in the app's environment (http_proxy, https_proxy, all_proxy,
 * no_proxy, upper and lower case). Each connection accepted there is a handshake
 * (src/net/proxy.h: HTTP CONNECT, absolute-form HTTP, SOCKS5) and then one
 * broker_net_connect() (via "proxy"): the same right check, resolution, vetting,
 * limits and audit as the net.connect call, then the relay moves the bytes.
 *
 * Bounds, per app: NETPROXY_PENDING_MAX connections between accept and the
 * broker's answer (more wait in the listen backlog: accept stops), each given
 * NETPROXY_HANDSHAKE_MS from accept to a complete handshake, however it trickles
 * in (slowloris), and PROXY_HANDSHAKE_MAX bytes (proxy.h).
 */

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "broker/broker.h"
#include "policy/manifest.h"

/* The default port (cellad.conf net.proxy.port): above Linux's ephemeral range
 * (32768-60999, ip_local_port_range), so no connection of the app's own takes it
 * as a source port, and no well-known service's. */
#define NETPROXY_PORT_DEFAULT 61080
/* Connections of one app between accept and the broker's answer. */
#define NETPROXY_PENDING_MAX 32
/* From accept to a complete handshake, ms (nginx's client_header_timeout is 60 s; a
 * local client sends its head in one write). */
#define NETPROXY_HANDSHAKE_MS 10000
/* After a refusal: how long the rest of the app's request is read and dropped so
 * that the reply is not lost to a reset (a lingering close, as nginx's
 * lingering_timeout), and how many such closes an app may have at once. */
#define NETPROXY_LINGER_MS  2000
#define NETPROXY_LINGER_MAX 64

typedef struct NetProxy NetProxy;

/* Whether m asks for a net.connect right (any scope) and not for net.internet: its
 * apps get a proxy. An app that asks for net.internet gets none: a program given
 * both would send everything to the proxy, which reaches only the net.connect hosts,
 * instead of its own interface (docs/network.md "The proxy"). */
bool netproxy_wanted(const Manifest *m);

/* The proxy's port for an app of manifest m in a sandbox of its own, given
 * SupervisorOptions.net_proxy_port (0: NETPROXY_PORT_DEFAULT, -1: none): 0 when it
 * gets no proxy. */
uint16_t netproxy_port(int option_port, const Manifest *m);

/*
 * Adds the proxy's variables for port to *envp (a strv): http_proxy, https_proxy
 * (http://127.0.0.1:port), all_proxy (socks5h://127.0.0.1:port: names resolved by
 * cella, the app has no DNS), no_proxy (localhost,127.0.0.1,::1), each in lower and
 * upper case (curl reads only the lower http_proxy, others the upper), except those
 * the manifest's env sets (m_env, a strv): the app's own word wins. Returns 0 or
 * -ENOMEM.
 */
int netproxy_env(char ***envp, char *const *m_env, uint16_t port);

/*
 * Serves the listening sockets fds[0..1] (taken; -1 for none: from
 * net_listen_in_netns()) for app_id on loop, through broker b. Returns 0 and *ret,
 * or -ENOMEM / a libuv error (the fds closed).
 */
int netproxy_start(uv_loop_t *loop, Broker *b, const char *app_id, int fds[2], NetProxy **ret);

/*
 * For an app already running (adopted from an earlier cellad, whose listener closed
 * with it): makes the listeners in the network namespace of pid (the sandbox's
 * init, /proc/<pid>/ns/net) and serves them as netproxy_start(). Returns 0 and
 * *ret, or -errno (EADDRINUSE: the app listens on the port itself now).
 */
int netproxy_open(uv_loop_t *loop, Broker *b, const char *app_id, pid_t pid, uint16_t port,
                  NetProxy **ret);

/*
 * Stops listening and ends the handshakes still running (their connections close);
 * connections the broker already relays are the broker's (detach ends them). A
 * connection waiting on the broker's answer is closed when the answer comes. NULL is
 * a no-op.
 */
void netproxy_free(NetProxy *p);

/* Counters for tests and logs. */
typedef struct NetProxyStats {
        uint64_t accepted;  /* connections accepted */
        uint64_t refused;   /* handshakes refused by the proxy (malformed, timeout) */
        uint64_t connected; /* handed to the broker that connected them */
        uint64_t failed;    /* handed to the broker that refused or could not connect */
        unsigned pending;   /* now between accept and the broker's answer */
} NetProxyStats;

void netproxy_stats(const NetProxy *p, NetProxyStats *ret);
