/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the address parser (src/net/addr.c): host strings an app
 * controls (net.connect's host, a proxy request's host).
 *
 * Beyond "no crash": every address parsed formats to a canonical text that parses
 * back to the same address; parsed means "looks numeric" and a name never does;
 * every class is in range with a phrase; and the parser agrees with the C library
 * wherever the C library takes a spelling: inet_pton(AF_INET6) and inet_aton(3)
 * (on inputs without whitespace, which glibc's inet_aton stops at).
 *
 * Input: the host string (NUL-terminated copy of the bytes).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char host[2048], buf[NET_ADDR_STRLEN];
        NetAddr a, b;
        NetAddrInfo info;
        int r;

        if (size >= sizeof(host))
                return 0;
        memcpy(host, data, size);
        host[size] = 0;
        r = net_addr_parse(host, &a);
        if (r < -1 && r != -22)
                abort();
        if (r == 0 && net_host_looks_numeric(host))
                abort();
        if (r == 1) {
                if (!net_host_looks_numeric(host))
                        abort();
                NetAddrClass c = net_addr_classify(&a, &info);
                if ((unsigned)c >= _NET_ADDR_CLASS_MAX || !info.block)
                        abort();
                if (info.embedded && info.v4.family != AF_INET)
                        abort();
                const char *t = net_addr_format(&a, true, buf, sizeof(buf));
                if (strcmp(t, "?") == 0)
                        abort();
                if (net_addr_parse(t, &b) != 1 || !net_addr_equal(&a, &b))
                        abort();
        }
        /* Agreement with the C library, for the hosts net_addr_parse() reads at all
         * (inet_aton takes any number of leading zeros: "000...0002" of 1243 bytes). */
        if (strlen(host) == size && size <= NET_ADDR_HOST_MAX && !strpbrk(host, " \t\n\v\f\r")) {
                struct in6_addr in6;
                struct in_addr in4;

                if (inet_pton(AF_INET6, host, &in6) == 1 &&
                    (r != 1 || a.family != AF_INET6 || memcmp(a.bytes, &in6, 16) != 0))
                        abort();
                if (inet_aton(host, &in4) == 1 && host[0] &&
                    (r != 1 || a.family != AF_INET || memcmp(a.bytes, &in4, 4) != 0))
                        abort();
        }
        return 0;
}
