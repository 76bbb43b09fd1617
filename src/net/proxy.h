/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The per-app proxy's protocols (docs/network.md, "The proxy"): the handshake of one
 * connection accepted on an app's proxy port, as a pure state machine. Bytes in
 * (what the app sent), an answer out: more bytes are needed (perhaps after writing a
 * reply, SOCKS5's method choice), connect to host:port (with the bytes to write to
 * the peer and to the app once connected), or refuse (with the reply to write
 * before closing). No sockets, no clocks: the caller (src/supervisor/netproxy.c)
 * reads, times out and connects; tests and the fuzzer drive it with byte strings.
 *
 * One port serves both protocols, told apart by the first byte: 0x05 is SOCKS5
 * (RFC 1928: a version byte, never a letter), anything else HTTP/1.x (RFC 9112):
 *  - "CONNECT host:port HTTP/1.1": a tunnel; the app's bytes after the head go to
 *    the peer as they are; the app gets "HTTP/1.1 200 Connection established".
 *  - "GET http://host[:port]/path HTTP/1.1" (absolute form, RFC 9112 3.2.2, what
 *    curl, python and git send for an http:// URL through a proxy): rewritten to
 *    origin form ("GET /path HTTP/1.1"), Host set to the URL's authority (RFC 9112
 *    3.2.2: a proxy replaces it), Proxy-* and hop-by-hop headers (RFC 9110 7.6.1)
 *    dropped, "Connection: close" added: one request per connection, so the next
 *    one is a new connection and a new check. Bytes after the head (a body) follow.
 *  - SOCKS5: no authentication (method 0x00) only; CONNECT with an IPv4 address,
 *    an IPv6 address or a domain name (resolved by cella, socks5h); BIND and UDP
 *    ASSOCIATE get reply 0x07, command not supported.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a handshake the proxy holds: an HTTP request head and what came with it
 * (16 KiB: 2 x nginx's 8k large_client_header_buffers line, more than any client
 * of the proxy sends: curl's CONNECT head is ~100 bytes). Over it: 431. Below
 * NET_RELAY_PREFIX_MAX (relay.h), so the rewritten head always fits a prefix. */
#define PROXY_HANDSHAKE_MAX (16u * 1024u)
/* Bytes of a reply the proxy writes itself (a refusal, a SOCKS reply). */
#define PROXY_REPLY_MAX 1024u
/* A host as the proxy passes it on: a DNS name (253, RFC 1035's 255 less the
 * length bytes) or an address literal, NUL-terminated. */
#define PROXY_HOST_MAX 254u

typedef enum ProxyKind {
        PROXY_KIND_UNKNOWN,      /* nothing read yet */
        PROXY_KIND_HTTP_CONNECT, /* CONNECT host:port */
        PROXY_KIND_HTTP_FORWARD, /* an absolute-form request, forwarded */
        PROXY_KIND_SOCKS5,
} ProxyKind;

typedef enum ProxyStep {
        PROXY_STEP_MORE,    /* read more (write out[] first when n_out > 0) */
        PROXY_STEP_CONNECT, /* connect to host:port; write out[] first when n_out > 0 */
        PROXY_STEP_REFUSE,  /* write out[] (the refusal), then close */
} ProxyStep;

typedef struct ProxyConn {
        ProxyKind kind;
        unsigned state; /* internal */
        uint8_t in[PROXY_HANDSHAKE_MAX];
        size_t n_in;    /* bytes held in in[] */
        size_t done;    /* bytes of in[] taken by the SOCKS5 greeting */
        size_t scanned; /* bytes of in[] searched for the head's end: a head that
                           trickles in byte by byte costs O(n), not O(n^2) */
        /* Out, valid after PROXY_STEP_CONNECT: */
        char host[PROXY_HOST_MAX + 1]; /* as the app wrote it, IPv6 without [] */
        uint16_t port;                 /* 1..65535 */
        char *to_peer;    /* malloc'd: the rewritten head and what followed it, or NULL */
        size_t n_to_peer; /* bytes, <= PROXY_HANDSHAKE_MAX + 64 */
        char to_app[64];  /* the success reply: "HTTP/1.1 200 ..." or a SOCKS5 reply */
        size_t n_to_app;
        /* Bytes to write to the app now (MORE, CONNECT) or before closing (REFUSE). */
        char out[PROXY_REPLY_MAX];
        size_t n_out;
        char why[160]; /* REFUSE: what was wrong, for the log */
} ProxyConn;

/* Starts c (zeroed, nothing held). */
void proxy_conn_init(ProxyConn *c);

/* Frees what c holds (to_peer); c may be reused after proxy_conn_init(). */
void proxy_conn_done(ProxyConn *c);

/* Bytes the caller may pass to proxy_feed() now (PROXY_HANDSHAKE_MAX less what c
 * holds); read at most this much so nothing past the handshake is lost. */
size_t proxy_conn_room(const ProxyConn *c);

/*
 * Takes n bytes the app sent (n <= proxy_conn_room(c); more is refused as too
 * large) and advances the handshake. out[] is reset at every call: write it before
 * the next. Returns the step; after PROXY_STEP_CONNECT or PROXY_STEP_REFUSE, c takes
 * no more input (proxy_feed() refuses again). Errors are steps: a malformed head is
 * PROXY_STEP_REFUSE with a 400 (SOCKS5: reply 0x01, 0x07 or 0x08), a head larger than
 * PROXY_HANDSHAKE_MAX a 431, never a crash.
 */
ProxyStep proxy_feed(ProxyConn *c, const void *data, size_t n);

/*
 * The reply to the app when the connection c asked for failed: error a negative
 * errno as broker_net_connect()'s done gets it (cella.proto NetConnectRequest:
 * EACCES, EPERM not allowed; ENOENT no such name; ECONNREFUSED, EHOSTUNREACH,
 * ENETUNREACH, ETIMEDOUT the connect; EMFILE, EAGAIN the app's limits; EINVAL),
 * why one sentence (NULL: strerror's). HTTP: 403 for a refusal, 429 for a limit,
 * 504 for a timeout, 400 for EINVAL, 502 otherwise, with "cella: <why>" as a
 * one-line text body (controls replaced, cut to fit). SOCKS5 (RFC 1928 6): 0x02
 * not allowed, 0x03 network unreachable, 0x04 host unreachable (and no such
 * name, timeout), 0x05 refused, 0x01 otherwise. Writes at most size bytes (size
 * >= 64) to buf; returns the bytes written.
 */
size_t proxy_refusal(ProxyKind kind, int error, const char *why, char *buf, size_t size);

/*
 * An HTTP/1.1 reply of status (400, 403, 405, 408, 429, 431, 502, 504, 505; another
 * is named "Bad Gateway") with the one-line text body "cella: <why>\n" (controls
 * replaced, cut to fit) and "Connection: close". Writes at most size bytes (>= 64)
 * to buf; returns the bytes written.
 */
size_t proxy_http_reply(int status, const char *why, char *buf, size_t size);

/* The kind's name for logs and audit records: "http-connect", "http", "socks5", "?" */
const char *proxy_kind_to_string(ProxyKind kind);
