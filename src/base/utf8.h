/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * UTF-8, checked one way everywhere: the wire protocol's strings (wire/wire.c),
 * the manifest's values (policy/manifest.c), text for a terminal (base/termsafe.c).
 *
 * The rule is RFC 3629 section 4 (the same as the Unicode Standard's table 3-7,
 * "Well-Formed UTF-8 Byte Sequences"): a character is 1 to 4 bytes; no overlong
 * form (C0, C1, E0 80..9F, F0 80..8F), no UTF-16 surrogate U+D800..U+DFFF (ED A0..BF),
 * nothing above U+10FFFF (F4 90.., F5..FF), no lone continuation byte (80..BF).
 * U+0000 is well-formed; callers that refuse NUL bytes say so themselves.
 *
 * Header-only (static inline), like base/time-util.h: the channel code is compiled
 * into libcella and cella-lua, which link no cella library.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Decodes the character at s, of which avail bytes are readable. Returns its length
 * in bytes (1 to 4) and *ret_cp; 0 if s does not start with a well-formed sequence
 * (then *ret_cp is unset); or -1 if the avail bytes are a well-formed but cut start
 * of one (avail 0 included: a stream decoder waits for more, a whole-buffer check
 * treats it as 0).
 */
static inline int utf8_decode(const unsigned char *s, size_t avail, uint32_t *ret_cp)
{
        unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range, table 3-7 */
        uint32_t c;
        size_t len;

        if (avail == 0)
                return -1;
        c = s[0];
        if (c < 0x80) {
                *ret_cp = c;
                return 1;
        }
        if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                c &= 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                c &= 0x0f;
                if (s[0] == 0xe0)
                        lo = 0xa0; /* no overlongs */
                else if (s[0] == 0xed)
                        hi = 0x9f; /* no surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                c &= 0x07;
                if (s[0] == 0xf0)
                        lo = 0x90; /* no overlongs */
                else if (s[0] == 0xf4)
                        hi = 0x8f; /* nothing above U+10FFFF */
        } else
                return 0; /* a continuation byte, C0/C1 (overlong), F5..FF */
        for (size_t i = 1; i < len; i++) {
                if (i >= avail)
                        return -1;
                if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf))
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }
        *ret_cp = c;
        return (int)len;
}

/* True if all n bytes at s are well-formed UTF-8 (the rule above; NUL bytes pass). */
static inline bool utf8_is_valid(const void *s, size_t n)
{
        const unsigned char *p = s;

        for (size_t i = 0; i < n;) {
                uint32_t cp;
                int k = utf8_decode(p + i, n - i, &cp);

                if (k <= 0)
                        return false;
                i += (size_t)k;
        }
        return true;
}
