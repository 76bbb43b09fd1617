/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for prompt_sanitize (src/supervisor/prompt.c): the reason an
 * app gives for a permission request, printed on the user's terminal. Beyond "no
 * crash": the output holds no byte a terminal acts on (C0 controls, DEL, ESC, the
 * C1 controls U+0080..U+009F in UTF-8), and the length returned is the string's
 * and within the bound.
 *
 * Input: byte 0 is the bound (max), the rest the string (cut at a NUL).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/prompt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char out[PROMPT_REASON_MAX + 4];
        char *in;
        size_t max, n;

        if (size < 1)
                return 0;
        max = data[0];
        in = malloc(size);
        if (!in)
                return 0;
        memcpy(in, data + 1, size - 1);
        in[size - 1] = 0;
        n = prompt_sanitize(in, max, out, sizeof out);
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
        return 0;
}
