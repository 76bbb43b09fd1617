/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Text made fit for a terminal (termsafe.h). */
#include <string.h>

#include "base/termsafe.h"
#include "base/utf8.h"

bool termsafe_is_control(uint32_t cp)
{
        return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
               (cp >= 0x202a && cp <= 0x202e) || /* LRE RLE PDF LRO RLO */
               (cp >= 0x2066 && cp <= 0x2069) || /* LRI RLI FSI PDI */
               cp == 0x200e || cp == 0x200f ||   /* LRM RLM */
               cp == 0x061c || cp == 0xfeff ||   /* ALM, BOM */
               cp == 0x2028 || cp == 0x2029;     /* line, paragraph separator */
}

/* --- one line (termsafe_field) --- */

/* Skips the body of a control string (OSC, DCS, SOS, PM, APC) up to and including
 * its terminator: BEL, ESC \ or the C1 ST (U+009C); or to the end of the string. */
static const unsigned char *skip_string(const unsigned char *s)
{
        for (; *s; s++) {
                if (*s == 0x07)
                        return s + 1;
                if (*s == 0x1b && s[1] == '\\')
                        return s + 2;
                if (*s == 0xc2 && s[1] == 0x9c)
                        return s + 2;
        }
        return s;
}

/* Skips a CSI's parameters, intermediates and final byte (ECMA-48 5.4). */
static const unsigned char *skip_csi(const unsigned char *s)
{
        while (*s >= 0x20 && *s <= 0x3f)
                s++;
        if (*s >= 0x40 && *s <= 0x7e)
                s++;
        return s;
}

/* s points after an ESC: skips the rest of the escape sequence. */
static const unsigned char *skip_escape(const unsigned char *s)
{
        switch (*s) {
        case '[':
                return skip_csi(s + 1);
        case ']':
        case 'P':
        case 'X':
        case '^':
        case '_':
                return skip_string(s + 1);
        default:
                /* nF / Fp / Fe / Fs: intermediates 0x20-0x2f, then one final byte */
                while (*s >= 0x20 && *s <= 0x2f)
                        s++;
                if (*s >= 0x30 && *s <= 0x7e)
                        s++;
                return s;
        }
}

size_t termsafe_field(const char *in, size_t max, char *out, size_t out_size)
{
        const unsigned char *s = (const unsigned char *)(in ?: "");
        size_t o = 0;
        bool cut = false;

        if (out_size < 5) {
                if (out_size > 0)
                        out[0] = 0;
                return 0;
        }
        if (max > out_size - 4)
                max = out_size - 4; /* room for "..." and the NUL */

        while (*s) {
                const unsigned char *c = s;
                size_t len = 1;
                uint32_t cp;
                int k;

                if (*s == 0x1b) {
                        s = skip_escape(s + 1);
                        continue;
                }
                if (*s == '\n' || *s == '\r' || *s == '\t') {
                        c = (const unsigned char *)" ";
                        s++;
                } else if (*s < 0x20 || *s == 0x7f) {
                        s++;
                        continue;
                } else if (*s < 0x80) {
                        s++;
                } else {
                        k = utf8_decode(s, strnlen((const char *)s, 4), &cp);
                        if (k <= 0) {
                                c = (const unsigned char *)"?";
                                s++;
                        } else {
                                len = (size_t)k;
                                s += len;
                                if (cp == 0x9b) { /* C1 CSI */
                                        s = skip_csi(s);
                                        continue;
                                }
                                if (cp == 0x90 || cp == 0x98 || cp == 0x9d || cp == 0x9e ||
                                    cp == 0x9f) { /* DCS SOS OSC PM APC */
                                        s = skip_string(s);
                                        continue;
                                }
                                if (cp == 0x2028 || cp == 0x2029) {
                                        c = (const unsigned char *)" ";
                                        len = 1;
                                } else if (termsafe_is_control(cp))
                                        continue; /* other C1 controls, bidi controls */
                        }
                }
                if (o + len > max) {
                        cut = true;
                        break;
                }
                memcpy(out + o, c, len);
                o += len;
        }
        if (cut) {
                memcpy(out + o, "...", 3);
                o += 3;
        }
        out[o] = 0;
        return o;
}

/* --- a stream (termsafe_stream) --- */

static const char hex[] = "0123456789abcdef";

static size_t put_byte_hex(char *out, unsigned char b)
{
        out[0] = '\\';
        out[1] = 'x';
        out[2] = hex[b >> 4];
        out[3] = hex[b & 15];
        return 4;
}

/* Writes one decoded character: itself, or its visible form. */
static size_t put_char(char *out, const unsigned char *s, size_t len, uint32_t cp)
{
        if (cp == '\n' || cp == '\t' || !termsafe_is_control(cp)) {
                memcpy(out, s, len);
                return len;
        }
        if (cp < 0x20 || cp == 0x7f) {
                out[0] = '^';
                out[1] = (char)(cp ^ 0x40); /* ESC ^[, BEL ^G, DEL ^? */
                return 2;
        }
        out[0] = '\\';
        out[1] = 'u';
        out[2] = hex[(cp >> 12) & 15];
        out[3] = hex[(cp >> 8) & 15];
        out[4] = hex[(cp >> 4) & 15];
        out[5] = hex[cp & 15];
        return 6;
}

/* One character of the stream, after the CR rule. */
static size_t put_stream_char(TermSafe *t, char *out, const unsigned char *s, size_t len,
                              uint32_t cp)
{
        size_t o = 0;

        if (t->one_line && (cp == '\n' || cp == '\r')) {
                out[0] = '^';
                out[1] = cp == '\n' ? 'J' : 'M';
                return 2;
        }
        if (t->cr) {
                t->cr = false;
                if (cp == '\n') {
                        out[0] = '\r';
                        out[1] = '\n';
                        return 2;
                }
                out[o++] = '^';
                out[o++] = 'M';
        }
        if (cp == '\r') {
                t->cr = true;
                return o;
        }
        return o + put_char(out + o, s, len, cp);
}

/* An invalid byte, after the CR rule. */
static size_t put_invalid(TermSafe *t, char *out, unsigned char b)
{
        size_t o = 0;

        if (t->cr) {
                t->cr = false;
                out[o++] = '^';
                out[o++] = 'M';
        }
        return o + put_byte_hex(out + o, b);
}

size_t termsafe_stream(TermSafe *t, const void *in, size_t n, char *out)
{
        const unsigned char *s = in;
        size_t i = 0, o = 0;
        uint32_t cp;
        int k;

        /* A character cut at the last chunk's end: complete it from this one. */
        while (t->n_pending > 0) {
                unsigned char tmp[8];
                size_t have = t->n_pending, take = n < 3 ? n : 3;

                memcpy(tmp, t->pending, have);
                memcpy(tmp + have, s, take);
                k = utf8_decode(tmp, have + take, &cp);
                if (k < 0) {
                        /* Still cut, so in is used up (have + n < 4). */
                        memcpy(t->pending + have, s, take);
                        t->n_pending = (uint8_t)(have + take);
                        return o;
                }
                if (k == 0) {
                        /* Not a character: its first byte is shown, the rest (which
                         * are continuation bytes) in the next rounds; in is untouched. */
                        o += put_invalid(t, out + o, t->pending[0]);
                        memmove(t->pending, t->pending + 1, have - 1);
                        t->n_pending = (uint8_t)(have - 1);
                        continue;
                }
                o += put_stream_char(t, out + o, tmp, (size_t)k, cp);
                i = (size_t)k - have;
                t->n_pending = 0;
        }
        while (i < n) {
                k = utf8_decode(s + i, n - i, &cp);
                if (k < 0) {
                        memcpy(t->pending, s + i, n - i);
                        t->n_pending = (uint8_t)(n - i);
                        break;
                }
                if (k == 0) {
                        o += put_invalid(t, out + o, s[i]);
                        i++;
                        continue;
                }
                o += put_stream_char(t, out + o, s + i, (size_t)k, cp);
                i += (size_t)k;
        }
        return o;
}

size_t termsafe_stream_end(TermSafe *t, char *out)
{
        size_t o = 0;

        if (t->cr) {
                out[o++] = '^';
                out[o++] = 'M';
        }
        for (size_t i = 0; i < t->n_pending; i++)
                o += put_byte_hex(out + o, t->pending[i]);
        *t = (TermSafe){.one_line = t->one_line};
        return o;
}

const char *termsafe_token(const char *in, char *buf, size_t size)
{
        size_t i;

        if (!in)
                return "-";
        if (size == 0)
                return "";
        for (i = 0; in[i] && i + 1 < size; i++) {
                char c = in[i];

                buf[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'
                                 ? c
                                 : '?';
        }
        buf[i] = 0;
        return buf;
}
