/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the proxy's handshakes (src/net/proxy.c), on what an app
 * controls: every byte it sends to its proxy port. Beyond "no crash":
 *   - the answer is the same whether the bytes come whole or cut into chunks (the
 *     cut points come from the input), as a socket may cut them anywhere (the bytes
 *     after the head, passed on as they are, may be fewer when cut);
 *   - a reply to write fits out[] and a refusal always has one;
 *   - a CONNECT names a host of plain bytes (no control byte, no space) and a port
 *     1..65535; an HTTP request passed on has one head, ends its head with
 *     "Connection: close", and keeps no Proxy-* header.
 *
 * Input: byte 0 seeds the chunk sizes, the rest is what the app sends.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds in chunks (seed 0: whole); returns the last step. */
static ProxyStep run(ProxyConn *c, const uint8_t *p, size_t n, uint8_t seed)
{
        ProxyStep st = PROXY_STEP_MORE;
        size_t at = 0;

        proxy_conn_init(c);
        while (st == PROXY_STEP_MORE && at < n) {
                size_t k = seed ? 1 + (p[at] ^ seed) % 17 : n - at;

                if (k > n - at)
                        k = n - at;
                /* The caller reads at most the room: a full buffer is always decided. */
                if (proxy_conn_room(c) == 0)
                        abort();
                if (k > proxy_conn_room(c))
                        k = proxy_conn_room(c);
                st = proxy_feed(c, p + at, k);
                if (c->n_out > sizeof c->out)
                        abort();
                at += k;
        }
        return st;
}

static void check_connect(const ProxyConn *c)
{
        if (c->port == 0 || c->host[0] == 0 || c->n_to_app > sizeof c->to_app)
                abort();
        for (const char *h = c->host; *h; h++)
                if ((unsigned char)*h <= 0x20 || (unsigned char)*h >= 0x7f)
                        abort();
        if (c->n_to_peer > PROXY_HANDSHAKE_MAX + 512)
                abort();
        if (c->kind == PROXY_KIND_HTTP_FORWARD) {
                const char *end = memmem(c->to_peer, c->n_to_peer, "\r\n\r\n", 4);
                const char *cl = memmem(c->to_peer, c->n_to_peer, "Connection: close\r\n\r\n", 21);

                if (!end || !cl || cl + 17 != end)
                        abort();
                /* Header lines: from the one after the request line. */
                for (const char *l = memmem(c->to_peer, c->n_to_peer, "\r\n", 2) + 2;
                     l && l < end;) {
                        const char *nl = memmem(l, (size_t)(end - l), "\r\n", 2);

                        if (strncasecmp(l, "proxy-", 6) == 0)
                                abort();
                        l = nl ? nl + 2 : NULL;
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static ProxyConn a, b;
        ProxyStep sa, sb;

        if (size < 1)
                return 0;
        sa = run(&a, data + 1, size - 1, 0);
        sb = run(&b, data + 1, size - 1, data[0]);
        /* Chunks may end the handshake earlier (a SOCKS5 greeting answered before
         * the rest came), never differently. */
        if (sa != sb)
                abort();
        if (sa == PROXY_STEP_REFUSE && a.n_out == 0 && a.kind != PROXY_KIND_UNKNOWN)
                abort();
        if (sa == PROXY_STEP_CONNECT) {
                check_connect(&a);
                /* b may have had less of what follows the head when it decided. */
                if (strcmp(a.host, b.host) != 0 || a.port != b.port || b.n_to_peer > a.n_to_peer ||
                    (b.n_to_peer && memcmp(a.to_peer, b.to_peer, b.n_to_peer) != 0))
                        abort();
        }
        proxy_conn_done(&a);
        proxy_conn_done(&b);
        return 0;
}
