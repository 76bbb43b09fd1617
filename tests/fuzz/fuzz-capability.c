/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the capability parser and scope matcher: strings an app
 * controls (its manifest's permissions, the topics and hosts it asks for).
 *
 * Beyond "no crash": the bounded, iterative topic matcher must agree with a naive
 * recursive matcher written from the documented rules (capability.h): '*' within a
 * segment matches any run of characters of that segment, a "**" segment one or more
 * whole segments. Differential on small concrete subjects, where the naive one's
 * exponential worst case stays cheap.
 *
 * Input: byte 0 picks the scope kind; the rest is "pattern\0subject".
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "net/addr.h"
#include "policy/capability.h"

#define DIFF_MAX 48 /* bytes of pattern and subject for the differential check */

/* Does segment pattern p[0..pn) match segment s[0..sn)? '*' = any run. */
static bool seg_match(const char *p, size_t pn, const char *s, size_t sn)
{
        if (pn == 0)
                return sn == 0;
        if (p[0] == '*')
                for (size_t k = 0; k <= sn; k++)
                        if (seg_match(p + 1, pn - 1, s + k, sn - k))
                                return true;
        return sn > 0 && p[0] == s[0] && seg_match(p + 1, pn - 1, s + 1, sn - 1);
}

/* Splits at '.' into at most 64 segments; returns the count or -1. */
static int split(const char *t, const char **seg, size_t *len)
{
        int n = 0;

        for (const char *p = t;; p++) {
                const char *e = strchr(p, '.');
                size_t l = e ? (size_t)(e - p) : strlen(p);

                if (n >= 64)
                        return -1;
                seg[n] = p;
                len[n++] = l;
                if (!e)
                        return n;
                p = e;
        }
}

static bool ref_match(const char **ps, const size_t *pl, int pn, const char **ss, const size_t *sl,
                      int sn)
{
        if (pn == 0)
                return sn == 0;
        if (pl[0] == 2 && memcmp(ps[0], "**", 2) == 0) {
                for (int k = 1; k <= sn; k++) /* one or more whole segments */
                        if (ref_match(ps + 1, pl + 1, pn - 1, ss + k, sl + k, sn - k))
                                return true;
                return false;
        }
        return sn > 0 && seg_match(ps[0], pl[0], ss[0], sl[0]) &&
               ref_match(ps + 1, pl + 1, pn - 1, ss + 1, sl + 1, sn - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const CapabilityScopeKind kinds[] = {
                CAPABILITY_SCOPE_TOPIC, CAPABILITY_SCOPE_APP_ID, CAPABILITY_SCOPE_HOST_PORT,
                CAPABILITY_SCOPE_ROOT,  CAPABILITY_SCOPE_PORT,   CAPABILITY_SCOPE_NAME};
        CapabilityRight right;
        const char *why = NULL, *pattern, *subject;
        char *buf;
        bool m;

        if (size < 1 || size > 4096)
                return 0;
        buf = calloc(1, size + 1); /* NUL-terminated copy, and a second NUL */
        if (!buf)
                return 0;
        memcpy(buf, data + 1, size - 1);
        pattern = buf;
        subject = buf + strlen(buf) + 1 <= buf + size ? buf + strlen(buf) + 1 : buf + size;

        /* The whole input as a right: parses or says why, never crashes; a parsed
         * right has a level. */
        if (capability_right_parse(pattern, &right, &why) < 0) {
                if (!why)
                        abort();
        } else if (capability_right_level(&right) > CAPABILITY_SIGNATURE)
                abort();

        m = capability_scope_match(kinds[data[0] % ELEMENTSOF(kinds)], pattern, subject);
        /* A match means both sides passed the kind's syntax check: a pattern
         * covers itself. */
        if (m && !capability_scope_match(kinds[data[0] % ELEMENTSOF(kinds)], pattern, pattern))
                abort();

        /* An address is covered only by itself (docs/network.md "Rights"): a host
         * that is an address spelling matches exactly its own text. */
        if (m && kinds[data[0] % ELEMENTSOF(kinds)] == CAPABILITY_SCOPE_HOST_PORT) {
                const char *pc = strrchr(pattern, ':'), *sc = strrchr(subject, ':');
                char sh[CAPABILITY_RIGHT_MAX];

                if (!pc || !sc || (size_t)(sc - subject) >= sizeof(sh))
                        abort();
                memcpy(sh, subject, (size_t)(sc - subject));
                sh[sc - subject] = 0;
                if (net_host_looks_numeric(sh) &&
                    ((size_t)(pc - pattern) != strlen(sh) || memcmp(pattern, sh, strlen(sh)) != 0))
                        abort();
        }

        if (kinds[data[0] % ELEMENTSOF(kinds)] == CAPABILITY_SCOPE_TOPIC &&
            strlen(pattern) <= DIFF_MAX && strlen(subject) <= DIFF_MAX && !strchr(subject, '*') &&
            capability_scope_match(CAPABILITY_SCOPE_TOPIC, pattern, pattern) &&
            capability_scope_match(CAPABILITY_SCOPE_TOPIC, subject, subject)) {
                const char *ps[64], *ss[64];
                size_t pl[64], sl[64];
                int pn = split(pattern, ps, pl), sn = split(subject, ss, sl);

                if (pn > 0 && sn > 0 && m != ref_match(ps, pl, pn, ss, sl, sn))
                        abort(); /* the two matchers disagree */
        }
        free(buf);
        return 0;
}
