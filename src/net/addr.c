/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Address spellings and classes (addr.h). The tables below are IANA's IPv4 and IPv6
 * Special-Purpose Address Registries (entries not globally reachable), plus the
 * metadata services of the large clouds, which sit inside those blocks and get a
 * class of their own so that an error names them.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/addr.h"

#define HOST_MAX NET_ADDR_HOST_MAX

static const char *const class_names[_NET_ADDR_CLASS_MAX] = {
        [NET_ADDR_PUBLIC] = "public",       [NET_ADDR_LOOPBACK] = "loopback",
        [NET_ADDR_PRIVATE] = "private",     [NET_ADDR_LINK_LOCAL] = "link-local",
        [NET_ADDR_METADATA] = "metadata",   [NET_ADDR_UNIQUE_LOCAL] = "unique-local",
        [NET_ADDR_MULTICAST] = "multicast", [NET_ADDR_UNSPECIFIED] = "unspecified",
        [NET_ADDR_BROADCAST] = "broadcast", [NET_ADDR_CGNAT] = "cgnat",
        [NET_ADDR_RESERVED] = "reserved",
};

static const char *const class_phrases[_NET_ADDR_CLASS_MAX] = {
        [NET_ADDR_PUBLIC] = "a public address",
        [NET_ADDR_LOOPBACK] = "a loopback address",
        [NET_ADDR_PRIVATE] = "a private address (RFC 1918)",
        [NET_ADDR_LINK_LOCAL] = "a link-local address",
        [NET_ADDR_METADATA] = "a cloud metadata service's address",
        [NET_ADDR_UNIQUE_LOCAL] = "a unique-local address (RFC 4193)",
        [NET_ADDR_MULTICAST] = "a multicast address",
        [NET_ADDR_UNSPECIFIED] = "the unspecified address",
        [NET_ADDR_BROADCAST] = "the broadcast address",
        [NET_ADDR_CGNAT] = "a shared address space (carrier-grade NAT, RFC 6598) address",
        [NET_ADDR_RESERVED] = "a special-purpose address that is not globally reachable",
};

const char *net_addr_class_name(NetAddrClass c)
{
        return (unsigned)c < _NET_ADDR_CLASS_MAX ? class_names[c] : "?";
}

const char *net_addr_class_phrase(NetAddrClass c)
{
        return (unsigned)c < _NET_ADDR_CLASS_MAX ? class_phrases[c] : "?";
}

/* ---- spellings ------------------------------------------------------------------- */

/* The WHATWG URL Standard's "ends in a number" checker (section 3.5): the last label
 * (a trailing dot ignored) is all digits, or "0x"/"0X" followed by hex digits. */
static bool ends_in_number(const char *s, size_t n)
{
        size_t end = n, start;

        if (end > 0 && s[end - 1] == '.')
                end--;
        start = end;
        while (start > 0 && s[start - 1] != '.')
                start--;
        if (start == end)
                return false;
        bool digits = true;
        for (size_t i = start; i < end; i++)
                if (!isdigit((unsigned char)s[i]))
                        digits = false;
        if (digits)
                return true;
        if (end - start >= 2 && s[start] == '0' && (s[start + 1] == 'x' || s[start + 1] == 'X')) {
                for (size_t i = start + 2; i < end; i++)
                        if (!isxdigit((unsigned char)s[i]))
                                return false;
                return true;
        }
        return false;
}

bool net_host_looks_numeric(const char *host)
{
        size_t n;

        if (!host)
                return false;
        n = strlen(host);
        if (n == 0)
                return false;
        if (host[0] == '[' || strchr(host, ':'))
                return true;
        return ends_in_number(host, n);
}

/* One part of a legacy IPv4 spelling: decimal, 0-octal, 0x-hex. Returns 0 and
 * *ret (capped at 2^32 so that an overflow is seen), or -EINVAL. */
static int parse_v4_part(const char *s, size_t n, uint64_t *ret)
{
        unsigned base = 10;
        uint64_t v = 0;

        if (n == 0)
                return -EINVAL;
        if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                base = 16;
                s += 2;
                n -= 2; /* "0x" alone is 0, as in inet_aton and the URL Standard */
        } else if (n >= 2 && s[0] == '0') {
                base = 8;
                s++;
                n--;
        }
        for (size_t i = 0; i < n; i++) {
                unsigned d;
                char c = s[i];

                if (c >= '0' && c <= '9')
                        d = (unsigned)(c - '0');
                else if (base == 16 && c >= 'a' && c <= 'f')
                        d = (unsigned)(c - 'a' + 10);
                else if (base == 16 && c >= 'A' && c <= 'F')
                        d = (unsigned)(c - 'A' + 10);
                else
                        return -EINVAL;
                if (d >= base)
                        return -EINVAL;
                v = v * base + d;
                if (v > UINT32_MAX)
                        v = (uint64_t)UINT32_MAX + 1; /* stays over: refused below */
        }
        *ret = v;
        return 0;
}

/* inet_aton's forms: a, a.b (8.24), a.b.c (8.8.16), a.b.c.d; one trailing dot. */
static int parse_v4(const char *s, size_t n, uint8_t out[4])
{
        uint64_t parts[4];
        unsigned k = 0;
        size_t start = 0;

        if (n > 0 && s[n - 1] == '.')
                n--;
        if (n == 0)
                return -EINVAL;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && s[i] != '.')
                        continue;
                if (k == 4 || parse_v4_part(s + start, i - start, &parts[k]) < 0)
                        return -EINVAL;
                k++;
                start = i + 1;
        }
        for (unsigned i = 0; i + 1 < k; i++)
                if (parts[i] > 255)
                        return -EINVAL;
        unsigned last_bytes = 5 - k;
        uint64_t limit = last_bytes == 4 ? (uint64_t)UINT32_MAX : (1ull << (8 * last_bytes)) - 1;
        if (parts[k - 1] > limit)
                return -EINVAL;
        uint32_t v = (uint32_t)parts[k - 1];
        for (unsigned i = 0; i + 1 < k; i++)
                v |= (uint32_t)parts[i] << (8 * (3 - i));
        out[0] = (uint8_t)(v >> 24);
        out[1] = (uint8_t)(v >> 16);
        out[2] = (uint8_t)(v >> 8);
        out[3] = (uint8_t)v;
        return 0;
}

static int parse_v6(const char *s, size_t n, NetAddr *a)
{
        char buf[INET6_ADDRSTRLEN + 1];
        const char *pct;
        size_t an;

        pct = memchr(s, '%', n);
        an = pct ? (size_t)(pct - s) : n;
        if (an == 0 || an >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, an);
        buf[an] = 0;
        if (inet_pton(AF_INET6, buf, a->bytes) != 1)
                return -EINVAL;
        a->family = AF_INET6;
        if (pct) {
                const char *z = pct + 1;
                size_t zn = n - an - 1;

                if (zn == 0 || zn >= sizeof(a->zone))
                        return -EINVAL;
                for (size_t i = 0; i < zn; i++)
                        if (!isalnum((unsigned char)z[i]) && z[i] != '-' && z[i] != '_' &&
                            z[i] != '.')
                                return -EINVAL;
                memcpy(a->zone, z, zn);
                a->zone[zn] = 0;
                a->scope_id = if_nametoindex(a->zone);
                if (a->scope_id == 0) {
                        char *end;
                        unsigned long v = strtoul(a->zone, &end, 10);
                        if (*end == 0 && v <= UINT32_MAX)
                                a->scope_id = (uint32_t)v;
                }
        }
        return 0;
}

int net_addr_parse(const char *host, NetAddr *ret)
{
        NetAddr a = {0};
        size_t n;
        int r;

        if (!host)
                return -EINVAL;
        n = strnlen(host, HOST_MAX + 1);
        if (n == 0 || n > HOST_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)host[i] <= ' ' || (unsigned char)host[i] >= 0x7f)
                        return -EINVAL; /* no host holds a space, control or non-ASCII byte */
        if (host[0] == '[') {
                if (n < 3 || host[n - 1] != ']')
                        return -EINVAL;
                r = parse_v6(host + 1, n - 2, &a);
        } else if (strchr(host, ':'))
                r = parse_v6(host, n, &a);
        else if (ends_in_number(host, n)) {
                a.family = AF_INET;
                r = parse_v4(host, n, a.bytes);
        } else
                return 0;
        if (r < 0)
                return r;
        if (ret)
                *ret = a;
        return 1;
}

/* ---- classes --------------------------------------------------------------------- */

typedef struct Block {
        uint8_t prefix[16];
        unsigned bits;
        NetAddrClass cls;
        const char *block;
} Block;

#define V4(a, b, c, d)                                                                             \
        {                                                                                          \
                a, b, c, d                                                                         \
        }

/* Longest match wins: the table is searched for the longest prefix that matches. */
static const Block v4_blocks[] = {
        /* Cloud metadata services (inside the blocks below): AWS, GCP, Azure, OpenStack
         * IMDS; AWS's DNS resolver and ECS task metadata; Alibaba Cloud's; Oracle's. */
        {V4(169, 254, 169, 254), 32, NET_ADDR_METADATA, "a cloud metadata service's address"},
        {V4(169, 254, 169, 253), 32, NET_ADDR_METADATA, "a cloud metadata service's address"},
        {V4(169, 254, 170, 2), 32, NET_ADDR_METADATA, "a cloud metadata service's address"},
        {V4(100, 100, 100, 200), 32, NET_ADDR_METADATA, "a cloud metadata service's address"},
        {V4(192, 0, 0, 192), 32, NET_ADDR_METADATA, "a cloud metadata service's address"},
        /* IANA IPv4 Special-Purpose Address Registry */
        {V4(0, 0, 0, 0), 32, NET_ADDR_UNSPECIFIED, "the unspecified address"},
        {V4(0, 0, 0, 0), 8, NET_ADDR_RESERVED, "a \"this network\" address (RFC 791)"},
        {V4(10, 0, 0, 0), 8, NET_ADDR_PRIVATE, "a private address (RFC 1918)"},
        {V4(100, 64, 0, 0), 10, NET_ADDR_CGNAT,
         "a shared address space (carrier-grade NAT, RFC 6598) address"},
        {V4(127, 0, 0, 0), 8, NET_ADDR_LOOPBACK, "a loopback address"},
        {V4(169, 254, 0, 0), 16, NET_ADDR_LINK_LOCAL, "a link-local address (RFC 3927)"},
        {V4(172, 16, 0, 0), 12, NET_ADDR_PRIVATE, "a private address (RFC 1918)"},
        {V4(192, 0, 0, 0), 24, NET_ADDR_RESERVED,
         "an IETF protocol assignments address (RFC 6890)"},
        /* 192.0.0.9 (PCP anycast) and 192.0.0.10 (TURN anycast) are globally reachable. */
        {V4(192, 0, 0, 9), 32, NET_ADDR_PUBLIC, "a public address"},
        {V4(192, 0, 0, 10), 32, NET_ADDR_PUBLIC, "a public address"},
        {V4(192, 0, 2, 0), 24, NET_ADDR_RESERVED, "a documentation address (TEST-NET-1, RFC 5737)"},
        {V4(192, 88, 99, 0), 24, NET_ADDR_RESERVED,
         "a deprecated 6to4 relay anycast address (RFC 7526)"},
        {V4(192, 168, 0, 0), 16, NET_ADDR_PRIVATE, "a private address (RFC 1918)"},
        {V4(198, 18, 0, 0), 15, NET_ADDR_RESERVED, "a benchmarking address (RFC 2544)"},
        {V4(198, 51, 100, 0), 24, NET_ADDR_RESERVED,
         "a documentation address (TEST-NET-2, RFC 5737)"},
        {V4(203, 0, 113, 0), 24, NET_ADDR_RESERVED,
         "a documentation address (TEST-NET-3, RFC 5737)"},
        {V4(224, 0, 0, 0), 4, NET_ADDR_MULTICAST, "a multicast address"},
        {V4(240, 0, 0, 0), 4, NET_ADDR_RESERVED, "a reserved address (240.0.0.0/4, RFC 1112)"},
        {V4(255, 255, 255, 255), 32, NET_ADDR_BROADCAST, "the broadcast address"},
};

/* IPv6. The blocks that embed an IPv4 address are handled in classify_v6(). */
static const Block v6_blocks[] = {
        /* AWS's IMDS and DNS resolver over IPv6 (inside fc00::/7). */
        {{0xfd, 0x00, 0x0e, 0xc2, [15] = 0x54, [14] = 0x02},
         128,
         NET_ADDR_METADATA,
         "a cloud metadata service's address"},
        {{0xfd, 0x00, 0x0e, 0xc2, [15] = 0x53, [14] = 0x02},
         128,
         NET_ADDR_METADATA,
         "a cloud metadata service's address"},
        /* IANA IPv6 Special-Purpose Address Registry */
        {{0}, 128, NET_ADDR_UNSPECIFIED, "the unspecified address"},
        {{[15] = 1}, 128, NET_ADDR_LOOPBACK, "a loopback address"},
        {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01},
         48,
         NET_ADDR_RESERVED,
         "a local-use IPv4/IPv6 translation address (RFC 8215)"},
        {{0x01, 0x00}, 64, NET_ADDR_RESERVED, "a discard-only address (RFC 6666)"},
        {{0x20, 0x01, 0x00, 0x00},
         23,
         NET_ADDR_RESERVED,
         "an IETF protocol assignments address (RFC 2928)"},
        /* Globally reachable exceptions inside 2001::/23. */
        {{0x20, 0x01, 0x00, 0x01, [15] = 1}, 128, NET_ADDR_PUBLIC, "a public address"},
        {{0x20, 0x01, 0x00, 0x01, [15] = 2}, 128, NET_ADDR_PUBLIC, "a public address"},
        {{0x20, 0x01, 0x00, 0x03}, 32, NET_ADDR_PUBLIC, "a public address"},
        {{0x20, 0x01, 0x00, 0x04, 0x01, 0x12}, 48, NET_ADDR_PUBLIC, "a public address"},
        {{0x20, 0x01, 0x00, 0x20}, 28, NET_ADDR_PUBLIC, "a public address"},
        {{0x20, 0x01, 0x00, 0x00}, 32, NET_ADDR_RESERVED, "a Teredo address (RFC 4380)"},
        {{0x20, 0x01, 0x0d, 0xb8}, 32, NET_ADDR_RESERVED, "a documentation address (RFC 3849)"},
        {{0x3f, 0xff}, 20, NET_ADDR_RESERVED, "a documentation address (RFC 9637)"},
        {{0x5f, 0x00}, 16, NET_ADDR_RESERVED, "a segment routing (SRv6) SID (RFC 9602)"},
        {{0xfc}, 7, NET_ADDR_UNIQUE_LOCAL, "a unique-local address (RFC 4193)"},
        {{0xfe, 0x80}, 10, NET_ADDR_LINK_LOCAL, "a link-local address"},
        {{0xfe, 0xc0}, 10, NET_ADDR_RESERVED, "a deprecated site-local address (RFC 3879)"},
        {{0xff}, 8, NET_ADDR_MULTICAST, "a multicast address"},
};

static bool prefix_match(const uint8_t *addr, const uint8_t *prefix, unsigned bits)
{
        unsigned full = bits / 8, rest = bits % 8;

        if (memcmp(addr, prefix, full) != 0)
                return false;
        if (rest == 0)
                return true;
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        return (addr[full] & mask) == (prefix[full] & mask);
}

static const Block *longest_match(const Block *t, size_t n, const uint8_t *addr)
{
        const Block *best = NULL;

        for (size_t i = 0; i < n; i++)
                if (prefix_match(addr, t[i].prefix, t[i].bits) && (!best || t[i].bits > best->bits))
                        best = &t[i];
        return best;
}

static NetAddrClass classify_v4(const uint8_t b[4], NetAddrInfo *info)
{
        const Block *m = longest_match(v4_blocks, sizeof(v4_blocks) / sizeof(v4_blocks[0]), b);

        info->cls = m ? m->cls : NET_ADDR_PUBLIC;
        info->block = m ? m->block : class_phrases[NET_ADDR_PUBLIC];
        return info->cls;
}

static const uint8_t mapped_prefix[12] = {[10] = 0xff, [11] = 0xff};
static const uint8_t translated_prefix[12] = {[8] = 0xff, [9] = 0xff}; /* ::ffff:0:0:0/96 */
static const uint8_t nat64_prefix[12] = {0x00, 0x64, 0xff, 0x9b};
static const uint8_t compat_prefix[12] = {0};

static NetAddrClass classify_v6(const uint8_t b[16], NetAddrInfo *info)
{
        const uint8_t *v4 = NULL;
        const char *form = NULL;

        if (memcmp(b, mapped_prefix, 12) == 0) {
                v4 = b + 12;
                form = "IPv4-mapped";
        } else if (memcmp(b, translated_prefix, 12) == 0) {
                v4 = b + 12;
                form = "IPv4-translated";
        } else if (memcmp(b, nat64_prefix, 12) == 0) {
                v4 = b + 12;
                form = "NAT64";
        } else if (b[0] == 0x20 && b[1] == 0x02) {
                v4 = b + 2;
                form = "6to4";
        } else if (memcmp(b, compat_prefix, 12) == 0 &&
                   (b[12] | b[13] | b[14] | (b[15] & 0xfe)) != 0) {
                v4 = b + 12; /* ::a.b.c.d, not :: or ::1 */
                form = "IPv4-compatible";
        }
        if (v4) {
                NetAddrInfo in = {0};

                classify_v4(v4, &in);
                info->v4.family = AF_INET;
                memcpy(info->v4.bytes, v4, 4);
                info->form = form;
                if (in.cls != NET_ADDR_PUBLIC) {
                        info->cls = in.cls;
                        info->block = in.block;
                        info->embedded = true;
                        return info->cls;
                }
                /* The IPv4-compatible form is deprecated (RFC 4291 2.5.5.1): nothing
                 * routes it; a public address inside it is still not reachable. */
                if (b[0] == 0 && memcmp(b, compat_prefix, 12) == 0) {
                        info->cls = NET_ADDR_RESERVED;
                        info->block = "a deprecated IPv4-compatible address (RFC 4291)";
                        return info->cls;
                }
                info->cls = NET_ADDR_PUBLIC;
                info->block = class_phrases[NET_ADDR_PUBLIC];
                return info->cls;
        }
        const Block *m = longest_match(v6_blocks, sizeof(v6_blocks) / sizeof(v6_blocks[0]), b);
        if (m) {
                info->cls = m->cls;
                info->block = m->block;
                return info->cls;
        }
        /* Global unicast is 2000::/3 (RFC 4291 2.4); the rest is unassigned. */
        if ((b[0] & 0xe0) != 0x20) {
                info->cls = NET_ADDR_RESERVED;
                info->block = "an address outside IPv6 global unicast space (RFC 4291)";
                return info->cls;
        }
        info->cls = NET_ADDR_PUBLIC;
        info->block = class_phrases[NET_ADDR_PUBLIC];
        return info->cls;
}

NetAddrClass net_addr_classify(const NetAddr *a, NetAddrInfo *ret)
{
        NetAddrInfo info = {0};

        if (a->family == AF_INET)
                classify_v4(a->bytes, &info);
        else if (a->family == AF_INET6)
                classify_v6(a->bytes, &info);
        else {
                info.cls = NET_ADDR_RESERVED;
                info.block = "not an IP address";
        }
        if (ret)
                *ret = info;
        return info.cls;
}

const char *net_addr_format(const NetAddr *a, bool brackets, char *buf, size_t size)
{
        char tmp[INET6_ADDRSTRLEN];
        int n;

        if (!inet_ntop(a->family == AF_INET ? AF_INET : AF_INET6, a->bytes, tmp, sizeof(tmp)))
                return "?";
        if (a->family == AF_INET)
                n = snprintf(buf, size, "%s", tmp);
        else
                n = snprintf(buf, size, "%s%s%s%s%s", brackets ? "[" : "", tmp,
                             a->zone[0] ? "%" : "", a->zone, brackets ? "]" : "");
        if (n < 0 || (size_t)n >= size)
                return "?";
        return buf;
}

bool net_addr_equal(const NetAddr *a, const NetAddr *b)
{
        return a->family == b->family &&
               memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16) == 0 &&
               strcmp(a->zone, b->zone) == 0;
}

socklen_t net_addr_sockaddr(const NetAddr *a, uint16_t port, struct sockaddr_storage *ret)
{
        memset(ret, 0, sizeof(*ret));
        if (a->family == AF_INET) {
                struct sockaddr_in *s = (struct sockaddr_in *)ret;

                s->sin_family = AF_INET;
                s->sin_port = htons(port);
                memcpy(&s->sin_addr, a->bytes, 4);
                return sizeof(*s);
        }
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)ret;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(port);
        memcpy(&s->sin6_addr, a->bytes, 16);
        s->sin6_scope_id = a->scope_id;
        return sizeof(*s);
}

int net_addr_from_sockaddr(const struct sockaddr *sa, NetAddr *ret)
{
        memset(ret, 0, sizeof(*ret));
        if (sa->sa_family == AF_INET) {
                ret->family = AF_INET;
                memcpy(ret->bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
                return 0;
        }
        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;

                ret->family = AF_INET6;
                memcpy(ret->bytes, &s->sin6_addr, 16);
                ret->scope_id = s->sin6_scope_id;
                if (s->sin6_scope_id && !if_indextoname(s->sin6_scope_id, ret->zone))
                        snprintf(ret->zone, sizeof(ret->zone), "%u", s->sin6_scope_id);
                return 0;
        }
        return -EAFNOSUPPORT;
}
