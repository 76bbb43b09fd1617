/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/size.h"

int parse_size(const char *s, uint64_t *ret)
{
        static const struct {
                char c;
                unsigned shift;
        } units[] = {{'K', 10}, {'M', 20}, {'G', 30}, {'T', 40}};
        uint64_t v = 0;
        unsigned shift = 0;
        const char *p = s;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t)(*p - '0');
        }
        if (*p) {
                size_t i;

                for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                        if (*p == units[i].c || *p == units[i].c + ('a' - 'A'))
                                break;
                if (i == sizeof(units) / sizeof(units[0])) {
                        if (strcmp(p, "B") != 0)
                                return -EINVAL;
                } else {
                        shift = units[i].shift;
                        p++;
                        if (*p && strcmp(p, "B") != 0 && strcmp(p, "iB") != 0)
                                return -EINVAL;
                }
        }
        if (shift && v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = v << shift;
        return 0;
}

char *format_size(uint64_t bytes, char *buf, unsigned long len)
{
        static const char suffix[] = "KMGT";
        int i = -1;

        while (i < 3 && bytes && (bytes & 1023) == 0) {
                bytes >>= 10;
                i++;
        }
        if (i < 0)
                snprintf(buf, len, "%llu", (unsigned long long)bytes);
        else
                snprintf(buf, len, "%llu%c", (unsigned long long)bytes, suffix[i]);
        return buf;
}
