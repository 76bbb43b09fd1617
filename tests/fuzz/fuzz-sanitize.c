/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the terminal sanitizer (src/base/termsafe.c), on what an
 * app controls: the reason of a permission request and a notification's text
 * (termsafe_field), and its output under `cella run` and `cella logs`
 * (termsafe_stream). Beyond "no crash":
 *   - field: the output holds no byte a terminal acts on (C0 controls, DEL, ESC,
 *     C1 controls in UTF-8), and the length returned is the string's and within
 *     the bound;
 *   - stream: the output is valid UTF-8 without a control but \n, \t and a CR
 *     right before LF, within TERMSAFE_STREAM_OUT, and the same whether the input
 *     comes whole or cut into chunks (the cut points come from the input).
 *
 * Input: byte 0 is the bound (max) and the chunk seed, the rest the string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/termsafe.h"
#include "base/utf8.h"

#define REASON_MAX 200u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_field(const uint8_t *data, size_t size)
{
        char out[REASON_MAX + 4];
        char *in;
        size_t max, n;

        max = data[0];
        in = malloc(size);
        if (!in)
                return;
        memcpy(in, data + 1, size - 1);
        in[size - 1] = 0;
        n = termsafe_field(in, max, out, sizeof out);
        free(in);
        if (n != strlen(out) || n > max + 3 || n >= sizeof out)
                abort();
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)out[i];

                if (c < 0x20 || c == 0x7f)
                        abort();
                if (c == 0xc2 && i + 1 < n && (unsigned char)out[i + 1] < 0xa0)
                        abort(); /* a C1 control */
        }
}

static void check_stream(const uint8_t *data, size_t size)
{
        const uint8_t *in = data + 1;
        size_t n = size - 1, w, o = 0;
        unsigned seed = data[0];
        TermSafe t = {};
        char *whole, *parts;

        whole = malloc(TERMSAFE_STREAM_OUT(n) + 16);
        parts = malloc(TERMSAFE_STREAM_OUT(n) + 16 * (n + 1));
        if (!whole || !parts)
                goto out;
        w = termsafe_stream(&t, in, n, whole);
        w += termsafe_stream_end(&t, whole + w);
        if (w > TERMSAFE_STREAM_OUT(n) + 16)
                abort();
        for (size_t i = 0; i < n;) {
                size_t k = 1 + (seed = seed * 1103515245u + 12345u) % 7;

                if (k > n - i)
                        k = n - i;
                o += termsafe_stream(&t, in + i, k, parts + o);
                i += k;
        }
        o += termsafe_stream_end(&t, parts + o);
        if (o != w || memcmp(whole, parts, w) != 0)
                abort();
        for (size_t i = 0; i < w;) {
                uint32_t cp;
                int k = utf8_decode((const unsigned char *)whole + i, w - i, &cp);

                if (k <= 0)
                        abort();
                if (cp == '\r' ? i + 1 >= w || whole[i + 1] != '\n'
                               : cp != '\n' && cp != '\t' && termsafe_is_control(cp))
                        abort();
                i += (size_t)k;
        }
out:
        free(whole);
        free(parts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        check_field(data, size);
        check_stream(data, size);
        return 0;
}
