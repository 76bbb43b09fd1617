/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The pure parts of cella.net (libnet.c): URLs, redirects, header checks and the
 * WebSocket handshake's key, with no Lua and no I/O, so unit tests reach them
 * (tests/unit/test-lua-net.c). URLs are parsed by libcurl's URL API (curl_url()),
 * the same parser the transfers use, never by hand.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest URL cella.net accepts, bytes (as browsers' common 8 KiB bound). */
#define NET_URL_MAX 8192
/* Longest host name (RFC 1035: 253 bytes) plus an IPv6 literal's brackets. */
#define NET_HOST_MAX 255

typedef enum NetScheme {
        NET_SCHEME_HTTP = 1u << 0,
        NET_SCHEME_HTTPS = 1u << 1,
        NET_SCHEME_WS = 1u << 2,
        NET_SCHEME_WSS = 1u << 3,
} NetScheme;

/* Where a URL leads: the host (lowercase; an IPv6 literal in brackets), the port
 * (the scheme's default when the URL names none) and whether it is TLS. */
typedef struct NetTarget {
        char host[NET_HOST_MAX + 1];
        uint16_t port;
        NetScheme scheme;
        bool tls;
} NetTarget;

/*
 * Parses url (NUL-terminated, at most NET_URL_MAX bytes) and fills *t. allowed is
 * the NetScheme bits accepted. ret_url (may be NULL) gets the URL as libcurl
 * normalizes it (malloc'd; free()). Returns 0; -EINVAL (not a URL, too long, no
 * host, a host with a zone id or a NUL, port 0), -EPROTONOSUPPORT (a scheme not in
 * allowed), -ENOMEM.
 */
int net_url_target(const char *url, unsigned allowed, NetTarget *t, char **ret_url);

/*
 * Resolves a redirect's Location value against the URL that answered (RFC 9110
 * 10.2.2, RFC 3986 5.2: relative references allowed) into *ret (malloc'd). The
 * result must be http or https (a redirect to file:, ftp: ... is refused).
 * Returns 0, -EINVAL (empty or bad location, too long), -EPROTONOSUPPORT, -ENOMEM.
 */
int net_url_resolve(const char *base, const char *location, char **ret);

/*
 * The method of the request a redirect with status leads to (RFC 9110 15.4, and
 * what browsers and curl do): 303 -> GET (HEAD stays HEAD) without a body; 301 and
 * 302 turn a POST into a GET without a body; 307 and 308 keep the method and the
 * body. *keep_body tells whether the body goes along. Returns a static string or
 * method itself.
 */
const char *net_redirect_method(long status, const char *method, bool *keep_body);

/* Whether status is a redirect cella.net.http follows (301, 302, 303, 307, 308). */
bool net_is_redirect(long status);

/* Whether a and b (NetTargets) are the same origin: scheme, host and port. */
bool net_same_origin(const NetTarget *a, const NetTarget *b);

/* Whether s (len bytes) is an HTTP field name: a token of RFC 9110 5.1, 1..256 bytes. */
bool net_header_name_ok(const char *s, size_t len);

/* Whether s (len bytes) is a field value cella.net sends: at most 8 KiB, no CR,
 * LF or NUL (RFC 9110 5.5: they would split the header). */
bool net_header_value_ok(const char *s, size_t len);

/* Whether s is a method: an upper-case token of 1..16 bytes ("GET", "PATCH"). */
bool net_method_ok(const char *s, size_t len);

/*
 * The Sec-WebSocket-Accept value for a handshake's Sec-WebSocket-Key (RFC 6455
 * 4.2.2: base64 of SHA-1 of the key and the GUID 258EAFA5-E914-47DA-95CA-
 * C5AB0DC85B11): 28 characters and a NUL into out. key is NUL-terminated.
 */
void net_ws_accept(const char *key, char out[29]);

/*
 * Checks the head of a server's answer to a WebSocket opening handshake (head: the
 * bytes up to and including the blank line, len bytes) against RFC 6455 4.1: an
 * HTTP/1.1 101 status, "Upgrade: websocket", "Connection" listing "upgrade"
 * (both case-insensitive), and Sec-WebSocket-Accept equal to accept (from
 * net_ws_accept()). Returns 0, or -EPROTO with *why (a static string) naming what
 * is wrong.
 */
int net_ws_check_response(const char *head, size_t len, const char *accept, const char **why);

/* Whether s (len bytes) is UTF-8, as a WebSocket text message must be (RFC 6455
 * 5.6): base/utf8.h's utf8_is_valid(), the one check of the code base (RFC 3629). */
bool net_utf8_valid(const char *s, size_t len);
