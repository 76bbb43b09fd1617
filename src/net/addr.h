/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Addresses in every spelling a host string can carry, and what kind of address each
 * is (docs/network.md, "Addresses a scoped right never reaches").
 *
 * Spellings (net_addr_parse()):
 * - IPv4 as inet_aton(3) and the WHATWG URL Standard's IPv4 parser take it: 1 to 4
 *   parts, each decimal, octal (leading 0) or hex (0x), the last part filling the
 *   bytes left ("127.1", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f.1"), one
 *   trailing dot allowed;
 * - IPv6 as inet_pton(3) takes it, with or without [brackets], with a zone
 *   ("fe80::1%eth0": letters, digits, '.', '-', '_'; a URL's "%25" is not decoded),
 *   with an embedded dotted quad.
 * A host whose last label is a number (the URL Standard's "ends in a number"
 * checker: all digits, or 0x and hex digits), or that holds a ':' or starts with
 * '[', is an address spelling: it parses or is refused, never looked up as a name.
 *
 * Classes (net_addr_classify()) follow IANA's special-purpose address registries,
 * the entries whose "Globally Reachable" is False
 * (https://www.iana.org/assignments/iana-ipv4-special-registry/,
 * https://www.iana.org/assignments/iana-ipv6-special-registry/, as of 2024), the
 * multicast blocks (224.0.0.0/4, RFC 5771; ff00::/8, RFC 4291), the limited
 * broadcast address (RFC 919), the IPv6 space outside 2000::/3 that IANA has not
 * allocated for unicast (RFC 4291 section 2.4), and the cloud providers' metadata
 * services. An IPv6 address that carries an IPv4 address (IPv4-mapped ::ffff:0:0/96
 * and ::ffff:0:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16)
 * takes the class of the IPv4 address inside it when that is not public.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef enum NetAddrClass {
        NET_ADDR_PUBLIC,       /* globally reachable unicast */
        NET_ADDR_LOOPBACK,     /* 127.0.0.0/8, ::1 */
        NET_ADDR_PRIVATE,      /* 10/8, 172.16/12, 192.168/16 (RFC 1918) */
        NET_ADDR_LINK_LOCAL,   /* 169.254.0.0/16 (RFC 3927), fe80::/10 */
        NET_ADDR_METADATA,     /* cloud metadata services: 169.254.169.254, fd00:ec2::254 ... */
        NET_ADDR_UNIQUE_LOCAL, /* fc00::/7 (RFC 4193) */
        NET_ADDR_MULTICAST,    /* 224.0.0.0/4, ff00::/8 */
        NET_ADDR_UNSPECIFIED,  /* 0.0.0.0, :: */
        NET_ADDR_BROADCAST,    /* 255.255.255.255 */
        NET_ADDR_CGNAT,        /* 100.64.0.0/10 (RFC 6598) */
        NET_ADDR_RESERVED,     /* any other block not globally reachable (IANA) */
        _NET_ADDR_CLASS_MAX,
} NetAddrClass;

typedef struct NetAddr {
        int family;        /* AF_INET or AF_INET6 */
        uint8_t bytes[16]; /* network order; 4 used for AF_INET */
        uint32_t scope_id; /* IPv6 zone as an interface index (0: none or unknown) */
        char zone[16];     /* the zone as written, without '%' ("" for none) */
} NetAddr;

/* What net_addr_classify() found. */
typedef struct NetAddrInfo {
        NetAddrClass cls;
        const char *block; /* English, the block's name ("a private address (RFC
                            * 1918)"); static */
        bool embedded;     /* cls is that of the IPv4 address inside an IPv6 one */
        const char *form;  /* then the form: "IPv4-mapped", "NAT64", ...; static */
        NetAddr v4;        /* and that IPv4 address */
} NetAddrInfo;

/* Longest net_addr_format() output: an IPv6 address with an embedded dotted quad,
 * brackets, '%' and a zone, and the NUL. */
#define NET_ADDR_STRLEN (46 + 2 + 1 + 16 + 1)

/* Bytes of the longest host net_addr_parse() reads (a DNS name is at most 253, RFC
 * 1035 section 2.3.4; the rest is room for zeros an address spelling may carry). */
#define NET_ADDR_HOST_MAX 1024u

/*
 * Parses host, a host string as it came (a URL's host, a call's field, a right's host
 * part). Returns 1 and *ret (may be NULL) if host is an address in one of the
 * spellings above; 0 if it is not an address spelling (a name to resolve); -EINVAL
 * if it looks like an address (see above) but is not a valid one: refuse it, never
 * resolve it. host NULL or empty, over NET_ADDR_HOST_MAX bytes, or holding a space, a control
 * character or a byte outside ASCII is -EINVAL too (no address or DNS name has one).
 */
int net_addr_parse(const char *host, NetAddr *ret);

/* True if host is spelled like an address (the rule above), valid or not. */
bool net_host_looks_numeric(const char *host);

/* Classifies a. Returns a->cls and fills *ret (may be NULL). */
NetAddrClass net_addr_classify(const NetAddr *a, NetAddrInfo *ret);

/* The class's short name ("private", "link-local", ...) and its English phrase
 * ("a private address (RFC 1918)"). Static strings; "?" out of range. */
const char *net_addr_class_name(NetAddrClass c);
const char *net_addr_class_phrase(NetAddrClass c);

/*
 * Writes a's canonical text into buf (size bytes, NET_ADDR_STRLEN is enough):
 * inet_ntop(3)'s form, IPv6 in [brackets] if brackets, a zone as "%zone". Returns
 * buf, or "?" if it does not fit.
 */
const char *net_addr_format(const NetAddr *a, bool brackets, char *buf, size_t size);

/* True if a and b are the same address (and zone). */
bool net_addr_equal(const NetAddr *a, const NetAddr *b);

/* Fills a sockaddr (sockaddr_in or sockaddr_in6) for a and port (host order).
 * Returns its length. */
socklen_t net_addr_sockaddr(const NetAddr *a, uint16_t port, struct sockaddr_storage *ret);

/* The reverse: a sockaddr_in/sockaddr_in6 to a NetAddr. Returns 0 or -EAFNOSUPPORT. */
int net_addr_from_sockaddr(const struct sockaddr *sa, NetAddr *ret);
