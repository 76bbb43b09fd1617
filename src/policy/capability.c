/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The capability catalogue and the scope matcher (capability.h, docs/capabilities.md).
 *
 * Scopes come from manifests and from apps' requests, so the matcher must stay cheap
 * on hostile input: topics, app ids and hosts are matched by base/pattern.c's
 * iterative matcher (no fnmatch(), no recursion), whose work is bounded by the
 * product of the lengths; the lengths and the wildcard count have named bounds
 * (base/pattern.h, capability.h) with tests at the bound.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/macro.h"
#include "base/pattern.h"
#include "base/suggest.h"
#include "net/addr.h"
#include "policy/capability.h"

#define TOPIC_MEANING                                                                              \
        "a bus topic pattern: dot-separated segments, '*' within one, '**' for any depth"
static int host_literal_check(const char *s, size_t len, const char **why);

#define IPC_NAME_MEANING                                                                           \
        "an IPC object name: its owner's app id, a dot, then the owner's name for it; '*' within " \
        "a segment, '**' for any depth"

#define APP_ID_MEANING "an app id pattern: dot-separated labels, '*' within one, '**' for any depth"

/* The catalogue. Order is bit order; add at the end (bits are in-memory only). */
static const CapabilityInfo catalogue[] = {
        {"storage", 0, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_NONE, false, NULL,
         "use the app's private storage calls (usage and quota of /data)"},
        {"timer", 1, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_NONE, false, NULL,
         "set broker timers that survive a freeze and wake the app"},
        {"notify", 2, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_NONE, false, NULL,
         "post notifications to the user"},
        {"bus.publish", 3, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_TOPIC, true, TOPIC_MEANING,
         "publish messages on bus topics matching the scope", true},
        {"bus.subscribe", 4, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_TOPIC, true, TOPIC_MEANING,
         "subscribe to bus topics matching the scope", true},
        {"bus.send", 5, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_APP_ID, true, APP_ID_MEANING,
         "send direct messages to apps whose id matches the scope", true},
        {"app.launch", 6, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_APP_ID, true, APP_ID_MEANING,
         "launch apps whose id matches the scope, with an intent", true},
        {"app.signal", 7, CAPABILITY_SIGNATURE, false, CAPABILITY_SCOPE_APP_ID, false,
         APP_ID_MEANING "; none: every app", "send signals to other apps' processes"},
        {"fs.read", 8, CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_ROOT, true,
         "the name of a user-file root (e.g. documents), exact",
         "read and list user files and folders under the root"},
        {"fs.write", 9, CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_ROOT, true,
         "the name of a user-file root (e.g. documents), exact",
         "create, change, rename and delete user files and folders under the root"},
        {"location", 10, CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NONE, false, NULL,
         "read the device's location"},
        {"camera", 11, CAPABILITY_DANGEROUS, true, CAPABILITY_SCOPE_NONE, false, NULL,
         "capture images and video (needs a recent user gesture)"},
        {"microphone", 12, CAPABILITY_DANGEROUS, true, CAPABILITY_SCOPE_NONE, false, NULL,
         "record audio (needs a recent user gesture)"},
        {"contacts", 13, CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NONE, false, NULL,
         "read and change the user's contacts"},
        {"sensors", 14, CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NONE, false, NULL,
         "read body and motion sensors"},
        {"bluetooth", 15, CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NONE, false, NULL,
         "find and connect to Bluetooth devices"},
        {"system.admin", 16, CAPABILITY_SIGNATURE, false, CAPABILITY_SCOPE_NONE, false, NULL,
         "administer cella itself (install, grant, stop other apps)"},
        {"net.connect", 17, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_HOST_PORT, true,
         "host:port; a DNS name, a pattern of names (*.example.com: dangerous), an IPv4 "
         "address (192.0.2.7) or an IPv6 one in brackets ([2001:db8::7]), exact; a port "
         "1-65535 or *; a pattern, or an address that is not public (loopback, private...), "
         "makes the right dangerous",
         "open connections through the kernel to the host and port of the scope"},
        {"net.internet", 18, CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NONE, false, NULL,
         "a network interface of the app's own that reaches any public address"},
        {"net.listen", 19, CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_PORT, true,
         "a port of the host, 1-65535",
         "expose an app port on that port of the host (port forwarding)"},
        {"net.group", 20, CAPABILITY_DANGEROUS, false, CAPABILITY_SCOPE_NAME, true,
         "the name of an app network: 1-32 bytes of a-z 0-9 _ -, starting with a-z, exact",
         "join the app network of that name: an interface reaching the other apps that hold it"},
        {"ipc.pipe", 21, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_TOPIC, true, IPC_NAME_MEANING,
         "create or accept pipes and packet channels named by the scope (docs/ipc.md)", true},
        {"ipc.shm", 22, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_TOPIC, true, IPC_NAME_MEANING,
         "create or open shared memory named by the scope (docs/ipc.md)", true},
        {"ipc.sem", 23, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_TOPIC, true, IPC_NAME_MEANING,
         "create or open counting semaphores named by the scope (docs/ipc.md)", true},
        {"ipc.queue", 24, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_TOPIC, true, IPC_NAME_MEANING,
         "create or open message queues named by the scope (docs/ipc.md)", true},
        {"keystore", 25, CAPABILITY_NORMAL, false, CAPABILITY_SCOPE_NONE, false, NULL,
         "keep keys in the kernel's keystore and use them by handle (docs/ipc.md)"},
};

_Static_assert(ELEMENTSOF(catalogue) <= 64, "one bit per name in a CapabilityMask");

const CapabilityInfo *capability_catalogue(size_t *ret_n)
{
        *ret_n = ELEMENTSOF(catalogue);
        return catalogue;
}

const CapabilityInfo *capability_lookup(const char *name, size_t len)
{
        if (!name || len == 0 || len > CAPABILITY_NAME_MAX)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(catalogue); i++)
                if (strlen(catalogue[i].name) == len && memcmp(catalogue[i].name, name, len) == 0)
                        return &catalogue[i];
        return NULL;
}

const CapabilityInfo *capability_suggest(const char *name, size_t len)
{
        const char *names[ELEMENTSOF(catalogue)], *best;

        if (!name || capability_lookup(name, len))
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(catalogue); i++)
                names[i] = catalogue[i].name;
        best = suggest_nearest(name, len, names, ELEMENTSOF(catalogue));
        return best ? capability_lookup(best, strlen(best)) : NULL;
}

CapabilityLevel capability_right_level(const CapabilityRight *r)
{
        if (!r || !r->cap)
                return CAPABILITY_NORMAL;
        if (r->cap->scope == CAPABILITY_SCOPE_HOST_PORT && r->cap->level == CAPABILITY_NORMAL) {
                const char *colon = strrchr(r->scope, ':');
                size_t hl = colon ? (size_t)(colon - r->scope) : strlen(r->scope);
                char host[CAPABILITY_RIGHT_MAX];
                NetAddr a;
                const char *why;

                /* A pattern of hosts: the user decides. */
                if (r->scope[0] == 0 || memchr(r->scope, '*', hl))
                        return CAPABILITY_DANGEROUS;
                /* An address no name reaches (the host's loopback, a private network, a
                 * metadata service): the user decides too. */
                memcpy(host, r->scope, hl);
                host[hl] = 0;
                if (host_literal_check(r->scope, hl, &why) == 1 && net_addr_parse(host, &a) == 1 &&
                    net_addr_classify(&a, NULL) != NET_ADDR_PUBLIC)
                        return CAPABILITY_DANGEROUS;
        }
        return r->cap->level;
}

const char *capability_level_to_string(CapabilityLevel level)
{
        switch (level) {
        case CAPABILITY_NORMAL:
                return "normal";
        case CAPABILITY_DANGEROUS:
                return "dangerous";
        case CAPABILITY_SIGNATURE:
                return "signature";
        }
        return "unknown";
}

/* ---- pattern syntax ------------------------------------------------------------------ */

/* The syntax of the dotted names a scope kind holds (base/pattern.h). */
static PatternSyntax syntax_of(CapabilityScopeKind kind)
{
        return kind == CAPABILITY_SCOPE_TOPIC    ? PATTERN_TOPIC
               : kind == CAPABILITY_SCOPE_APP_ID ? PATTERN_APP_ID
                                                 : PATTERN_HOST;
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* Splits s (len bytes), a dotted pattern of kind, into segs (pattern_split()). */
static int split_dotted(CapabilityScopeKind kind, const char *s, size_t len,
                        PatternSeg segs[static PATTERN_SEGMENTS_MAX], const char **why)
{
        return pattern_split(syntax_of(kind), s, len, segs, why);
}

/* Splits "host:port" at the last ':'; checks the port ("*" or 1..65535, no leading 0). */
static int split_host_port(const char *s, size_t len, size_t *ret_host_len, const char **why)
{
        const char *colon = memrchr(s, ':', len);
        const char *port;
        size_t plen;
        unsigned v = 0;

        if (!colon) {
                *why = "expected host:port";
                return -EINVAL;
        }
        port = colon + 1;
        plen = len - (size_t)(colon - s) - 1;
        if (plen == 1 && port[0] == '*') {
                *ret_host_len = (size_t)(colon - s);
                return 0;
        }
        if (plen == 0 || plen > 5 || port[0] == '0') {
                *why = "the port must be 1-65535 or *";
                return -EINVAL;
        }
        for (size_t i = 0; i < plen; i++) {
                if (!is_digit(port[i])) {
                        *why = "the port must be 1-65535 or *";
                        return -EINVAL;
                }
                v = v * 10 + (unsigned)(port[i] - '0');
        }
        if (v > 65535) {
                *why = "the port must be 1-65535 or *";
                return -EINVAL;
        }
        *ret_host_len = (size_t)(colon - s);
        return 0;
}

/*
 * The host part of a HOST_PORT scope when it is an address (net/addr.h: it starts
 * with '[' or ends in a number): an IPv4 address in its canonical dotted quad or an
 * IPv6 one in brackets, in inet_ntop(3)'s canonical text, exact: no glob inside an
 * address, and one spelling per address, so that a right names it one way only
 * ("127.1" and "[::ffff:127.0.0.1]" are other spellings, refused with the one to
 * write). Returns 1 (a valid address), 0 (not an address: a name or a pattern), or
 * -EINVAL with *why.
 */
static int host_literal_check(const char *s, size_t len, const char **why)
{
        static _Thread_local char msg[160];
        char host[CAPABILITY_RIGHT_MAX], canon[NET_ADDR_STRLEN];
        NetAddr a;
        int r;

        if (len == 0 || len >= sizeof(host))
                return 0;
        memcpy(host, s, len);
        host[len] = 0;
        if (memchr(host, '*', len) && strpbrk(host, "0123456789")) {
                /* A pattern over addresses ("10.0.0.*", "10.*"): what it would be with
                 * its stars as digits. */
                char probe[CAPABILITY_RIGHT_MAX];

                for (size_t i = 0; i <= len; i++)
                        probe[i] = host[i] == '*' ? '0' : host[i];
                if (net_host_looks_numeric(probe)) {
                        *why = "an address is written whole: no '*' inside it";
                        return -EINVAL;
                }
        }
        if (!net_host_looks_numeric(host))
                return 0;
        if (memchr(host, '*', len)) {
                *why = "an address is written whole: no '*' inside it";
                return -EINVAL;
        }
        r = net_addr_parse(host, &a);
        if (r <= 0 || (a.family == AF_INET6 && host[0] != '[')) {
                *why = r <= 0 ? "not a valid address (an IPv6 address goes in brackets: [::1])"
                              : "an IPv6 address goes in brackets: [2001:db8::1]";
                return -EINVAL;
        }
        net_addr_format(&a, true, canon, sizeof(canon));
        if (strcmp(canon, host) != 0) {
                snprintf(msg, sizeof(msg), "write the address as %s", canon);
                *why = msg;
                return -EINVAL;
        }
        return 1;
}

static bool root_is_valid(const char *s, size_t len)
{
        if (len == 0 || len > CAPABILITY_ROOT_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
                return false;
        for (size_t i = 1; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || is_digit(s[i]) || s[i] == '_' || s[i] == '-'))
                        return false;
        return true;
}

/* A port number 1..65535, decimal, no sign, no leading 0. */
static bool port_is_valid(const char *s, size_t len)
{
        unsigned v = 0;

        if (len == 0 || len > 5 || s[0] == '0')
                return false;
        for (size_t i = 0; i < len; i++) {
                if (!is_digit(s[i]))
                        return false;
                v = v * 10 + (unsigned)(s[i] - '0');
        }
        return v <= 65535;
}

/* Checks scope s (len bytes) against kind's grammar. 0 or -EINVAL with *why. */
static int scope_check(CapabilityScopeKind kind, const char *s, size_t len, const char **why)
{
        PatternSeg segs[PATTERN_SEGMENTS_MAX];
        size_t host_len;
        int r;

        switch (kind) {
        case CAPABILITY_SCOPE_TOPIC:
        case CAPABILITY_SCOPE_APP_ID:
                r = split_dotted(kind, s, len, segs, why);
                return r < 0 ? r : 0;
        case CAPABILITY_SCOPE_HOST_PORT:
                r = split_host_port(s, len, &host_len, why);
                if (r < 0)
                        return r;
                r = host_literal_check(s, host_len, why);
                if (r != 0)
                        return r < 0 ? r : 0;
                r = split_dotted(kind, s, host_len, segs, why);
                return r < 0 ? r : 0;
        case CAPABILITY_SCOPE_ROOT:
                if (!root_is_valid(s, len)) {
                        *why = "a root name is 1-32 bytes of a-z 0-9 _ -, starting with a-z";
                        return -EINVAL;
                }
                return 0;
        case CAPABILITY_SCOPE_NAME:
                if (!root_is_valid(s, len)) {
                        *why = "a network name is 1-32 bytes of a-z 0-9 _ -, starting with a-z";
                        return -EINVAL;
                }
                return 0;
        case CAPABILITY_SCOPE_PORT:
                if (!port_is_valid(s, len)) {
                        *why = "the port must be 1-65535";
                        return -EINVAL;
                }
                return 0;
        case CAPABILITY_SCOPE_NONE:
                break;
        }
        *why = "this right takes no scope";
        return -EINVAL;
}

/* ---- matching -------------------------------------------------------------------------- */

static bool dotted_match(CapabilityScopeKind kind, const char *p, size_t plen, const char *s,
                         size_t slen)
{
        return pattern_match(syntax_of(kind), p, plen, s, slen);
}

bool capability_scope_match(CapabilityScopeKind kind, const char *pattern, const char *subject)
{
        size_t plen, slen, phost, shost;
        const char *why;

        if (!pattern || !subject)
                return false;
        plen = strnlen(pattern, CAPABILITY_RIGHT_MAX);
        slen = strnlen(subject, CAPABILITY_RIGHT_MAX);
        if (plen == CAPABILITY_RIGHT_MAX || slen == CAPABILITY_RIGHT_MAX)
                return false;
        switch (kind) {
        case CAPABILITY_SCOPE_TOPIC:
        case CAPABILITY_SCOPE_APP_ID:
                return dotted_match(kind, pattern, plen, subject, slen);
        case CAPABILITY_SCOPE_HOST_PORT:
                if (split_host_port(pattern, plen, &phost, &why) < 0 ||
                    split_host_port(subject, slen, &shost, &why) < 0)
                        return false;
                /* Port: "*" covers everything; a number covers only itself. */
                if (strcmp(pattern + phost + 1, "*") != 0 &&
                    strcmp(pattern + phost + 1, subject + shost + 1) != 0)
                        return false;
                /* An address (either side) matches only itself, never a pattern. */
                if (host_literal_check(pattern, phost, &why) != 0 ||
                    host_literal_check(subject, shost, &why) != 0)
                        return phost == shost && memcmp(pattern, subject, phost) == 0 &&
                               host_literal_check(pattern, phost, &why) == 1;
                return dotted_match(kind, pattern, phost, subject, shost);
        case CAPABILITY_SCOPE_ROOT:
        case CAPABILITY_SCOPE_NAME:
                return root_is_valid(pattern, plen) && plen == slen &&
                       memcmp(pattern, subject, plen) == 0;
        case CAPABILITY_SCOPE_PORT:
                return port_is_valid(pattern, plen) && plen == slen &&
                       memcmp(pattern, subject, plen) == 0;
        case CAPABILITY_SCOPE_NONE:
                break;
        }
        return false;
}

/* ---- namespaces ------------------------------------------------------------------------ */

/* Splits an app id (manifest_id_is_valid: never a wildcard) into segments. */
static int split_id(const char *id, PatternSeg segs[static PATTERN_SEGMENTS_MAX])
{
        const char *why;

        if (!id || !manifest_id_is_valid(id))
                return -EINVAL;
        return split_dotted(CAPABILITY_SCOPE_APP_ID, id, strlen(id), segs, &why);
}

static bool seg_has_star(PatternSeg g)
{
        return memchr(g.s, '*', g.len) != NULL;
}

static bool seg_eq(PatternSeg a, PatternSeg b)
{
        return a.len == b.len && memcmp(a.s, b.s, a.len) == 0;
}

bool capability_scope_within(CapabilityScopeKind kind, const char *scope, const char *id)
{
        PatternSeg ss[PATTERN_SEGMENTS_MAX], is[PATTERN_SEGMENTS_MAX];
        const char *why;
        int sn, in;

        if ((kind != CAPABILITY_SCOPE_TOPIC && kind != CAPABILITY_SCOPE_APP_ID) || !scope)
                return false;
        in = split_id(id, is);
        sn = split_dotted(kind, scope, strnlen(scope, CAPABILITY_RIGHT_MAX), ss, &why);
        if (in < 0 || sn < 0 || sn < in || (kind == CAPABILITY_SCOPE_APP_ID && sn != in))
                return false;
        for (int i = 0; i < in; i++)
                if (seg_has_star(ss[i]) || !seg_eq(ss[i], is[i]))
                        return false;
        return true;
}

bool capability_scope_may_reach(CapabilityScopeKind kind, const char *scope, const char *id)
{
        PatternSeg ss[PATTERN_SEGMENTS_MAX], is[PATTERN_SEGMENTS_MAX];
        const char *why;
        int sn, in;

        if ((kind != CAPABILITY_SCOPE_TOPIC && kind != CAPABILITY_SCOPE_APP_ID) || !scope)
                return false;
        in = split_id(id, is);
        sn = split_dotted(kind, scope, strnlen(scope, CAPABILITY_RIGHT_MAX), ss, &why);
        if (in < 0 || sn < 0)
                return false;
        for (int i = 0; i < in; i++) {
                if (i >= sn)
                        return false; /* the scope ends before id does */
                if (pattern_seg_is_dstar(ss[i]))
                        return true; /* may take id's remaining segments: cannot rule out */
                if (!pattern_seg_match(ss[i], is[i]))
                        return false;
        }
        /* Every segment of id is matched: the scope matches id itself (same length)
         * or topics under it; an app id pattern only id itself. */
        return kind == CAPABILITY_SCOPE_TOPIC || sn == in;
}

/* ---- rights -------------------------------------------------------------------------- */

static int fail(const char **why, int r, const char *reason)
{
        if (why)
                *why = reason;
        return r;
}

int capability_right_parse(const char *text, CapabilityRight *ret, const char **why)
{
        const CapabilityInfo *c;
        const char *colon, *reason = NULL;
        size_t len, nlen;
        int r;

        if (!text)
                return fail(why, -EINVAL, "no right given");
        len = strnlen(text, CAPABILITY_RIGHT_MAX);
        if (len == CAPABILITY_RIGHT_MAX)
                return fail(why, -ENAMETOOLONG, "a right is at most 255 bytes");
        if (len == 0)
                return fail(why, -EINVAL, "the right is empty");
        colon = memchr(text, ':', len);
        nlen = colon ? (size_t)(colon - text) : len;
        c = capability_lookup(text, nlen);
        if (!c)
                return fail(why, -ENOENT, "no such right in the catalogue (docs/capabilities.md)");
        if (!colon) {
                if (c->scope_required)
                        return fail(why, -EINVAL, "this right needs a scope after ':'");
                ret->cap = c;
                ret->scope[0] = 0;
                return 0;
        }
        if (c->scope == CAPABILITY_SCOPE_NONE)
                return fail(why, -EINVAL, "this right takes no scope");
        r = scope_check(c->scope, colon + 1, len - nlen - 1, &reason);
        if (r < 0)
                return fail(why, r, reason);
        ret->cap = c;
        memcpy(ret->scope, colon + 1, len - nlen - 1);
        ret->scope[len - nlen - 1] = 0;
        return 0;
}

bool capability_right_covers(const CapabilityRight *granted, const CapabilityRight *asked)
{
        if (!granted || !asked || !granted->cap || granted->cap != asked->cap)
                return false;
        if (granted->cap->scope == CAPABILITY_SCOPE_NONE || !granted->scope[0])
                return true;
        if (!asked->scope[0])
                return false;
        return capability_scope_match(granted->cap->scope, granted->scope, asked->scope);
}

int capability_mask_of(char *const *rights, CapabilityMask *ret_mask)
{
        CapabilityMask mask = 0;
        CapabilityRight right;
        int r;

        for (char *const *p = rights; p && *p; p++) {
                r = capability_right_parse(*p, &right, NULL);
                if (r < 0)
                        return r;
                mask |= capability_bit(right.cap);
        }
        *ret_mask = mask;
        return 0;
}

int capability_export_parse(const char *text, const char *id, char *buf, size_t size,
                            const char **why)
{
        const CapabilityInfo *c;
        CapabilityRight right;
        int r, n;

        if (!text || !id || !buf || size < CAPABILITY_RIGHT_MAX)
                return fail(why, -EINVAL, "no export given");
        c = strchr(text, ':') ? NULL
                              : capability_lookup(text, strnlen(text, CAPABILITY_NAME_MAX + 1));
        if (c && c->scope == CAPABILITY_SCOPE_APP_ID)
                n = snprintf(buf, size, "%s:%s", text, id); /* "bus.send": to this app */
        else
                n = snprintf(buf, size, "%s", text);
        if (n < 0 || (size_t)n >= CAPABILITY_RIGHT_MAX)
                return fail(why, -ENAMETOOLONG, "a right is at most 255 bytes");
        r = capability_right_parse(buf, &right, why);
        if (r < 0)
                return r;
        if (!right.cap->reaches_apps)
                return fail(why, -EINVAL,
                            "only bus.publish, bus.subscribe, bus.send, app.launch and ipc.* "
                            "can be exported");
        if (!capability_scope_within(right.cap->scope, right.scope, id))
                return fail(why, -EINVAL,
                            right.cap->scope == CAPABILITY_SCOPE_TOPIC
                                    ? "an app exports only topics under its own id "
                                      "(\"<id>.name\")"
                                    : "an app exports only its own id");
        return 0;
}

int capability_check_manifest(const Manifest *m, const char **bad, const char **why)
{
        CapabilityRight right;
        const char *reason = NULL;
        int r;

        if (!m)
                return -EINVAL;
        for (char **p = m->permissions; p && *p; p++) {
                r = capability_right_parse(*p, &right, &reason);
                if (r < 0) {
                        if (bad)
                                *bad = *p;
                        if (why)
                                *why = reason;
                        return r;
                }
        }
        for (char **p = m->exports; p && *p; p++) {
                char buf[CAPABILITY_RIGHT_MAX];

                r = capability_export_parse(*p, m->id, buf, sizeof buf, &reason);
                if (r < 0) {
                        if (bad)
                                *bad = *p;
                        if (why)
                                *why = reason;
                        return r;
                }
        }
        return 0;
}
