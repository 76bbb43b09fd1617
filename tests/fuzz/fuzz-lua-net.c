/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for cella.net's pure helpers (src/lua/netutil.c), on what a Lua
 * app or a server controls: a URL an app passes, a redirect's Location a server
 * sends, the head of a server's WebSocket handshake answer, header names and
 * values. Beyond "no crash":
 *   - a URL that parses has a host of 1..NET_HOST_MAX bytes without '%' and a port
 *     1..65535, and the scheme asked for;
 *   - a redirect resolves only to http or https, and the result parses again;
 *   - a handshake answer is accepted only with status 101 and the expected key;
 *   - a header value that passes holds no CR, LF or NUL.
 *
 * Input: byte 0 picks what the rest is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua/netutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const unsigned schemes[] = {NET_SCHEME_HTTP | NET_SCHEME_HTTPS,
                                           NET_SCHEME_WS | NET_SCHEME_WSS};
        char *s, *out = NULL, accept[29];
        const char *why = NULL;
        NetTarget t;

        if (size < 1 || size > NET_URL_MAX + 2)
                return 0;
        s = malloc(size);
        if (!s)
                return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = 0;
        switch (data[0] % 4) {
        case 0:
                if (net_url_target(s, schemes[data[0] / 4 % 2], &t, &out) == 0) {
                        size_t n = strlen(t.host);

                        if (n == 0 || n > NET_HOST_MAX || strchr(t.host, '%') || t.port == 0 ||
                            !(t.scheme & schemes[data[0] / 4 % 2]) || !out)
                                abort();
                }
                break;
        case 1:
                if (net_url_resolve("https://a.test:8443/x/y?q=1", s, &out) == 0) {
                        if (net_url_target(out, NET_SCHEME_HTTP | NET_SCHEME_HTTPS, &t, NULL) != 0)
                                abort();
                }
                break;
        case 2:
                net_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", accept);
                if (net_ws_check_response(s, size - 1, accept, &why) == 0 &&
                    (size - 1 < 12 || memcmp(s, "HTTP/1.1 101", 12) != 0 ||
                     !memmem(s, size - 1, accept, 28)))
                        abort();
                break;
        default:
                if (net_header_value_ok((const char *)data + 1, size - 1) &&
                    (memchr(data + 1, '\r', size - 1) || memchr(data + 1, '\n', size - 1) ||
                     memchr(data + 1, 0, size - 1)))
                        abort();
                (void)net_header_name_ok((const char *)data + 1, size - 1);
                (void)net_method_ok((const char *)data + 1, size - 1);
                (void)net_utf8_valid((const char *)data + 1, size - 1);
                break;
        }
        free(out);
        free(s);
        return 0;
}
