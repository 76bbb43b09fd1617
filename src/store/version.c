/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Version ordering for `cella update` (store.h): Debian's, as deb-version(7) defines
 * it and dpkg's lib/dpkg/version.c implements it (written here from the manual's
 * text: epoch, upstream version, revision; non-digit runs compared with '~' first and
 * letters before other characters, digit runs compared as numbers).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The weight of one character of a non-digit run: '~' below the end (0), letters by
 * ASCII, other characters after every letter (deb-version(7)). */
static int order(char c)
{
        if (is_digit(c))
                return 0;
        if (is_alpha(c))
                return c;
        if (c == '~')
                return -1;
        if (c)
                return c + 256;
        return 0;
}

/* Compares the parts [a, a_end) and [b, b_end) as deb-version(7) does. */
static int part_compare(const char *a, const char *a_end, const char *b, const char *b_end)
{
        while (a < a_end || b < b_end) {
                int first_diff = 0;

                while ((a < a_end && !is_digit(*a)) || (b < b_end && !is_digit(*b))) {
                        int ac = a < a_end ? order(*a) : 0, bc = b < b_end ? order(*b) : 0;

                        if (ac != bc)
                                return ac - bc;
                        if (a < a_end)
                                a++;
                        if (b < b_end)
                                b++;
                }
                while (a < a_end && *a == '0')
                        a++;
                while (b < b_end && *b == '0')
                        b++;
                while (a < a_end && is_digit(*a) && b < b_end && is_digit(*b)) {
                        if (!first_diff)
                                first_diff = *a - *b;
                        a++;
                        b++;
                }
                if (a < a_end && is_digit(*a))
                        return 1;
                if (b < b_end && is_digit(*b))
                        return -1;
                if (first_diff)
                        return first_diff;
        }
        return 0;
}

typedef struct Parsed {
        unsigned long epoch;
        const char *up, *up_end, *rev, *rev_end;
} Parsed;

static void parse(const char *v, Parsed *p)
{
        const char *colon = strchr(v, ':'), *dash, *end = v + strlen(v);
        bool digits = colon && colon > v;

        for (const char *c = v; digits && c < colon; c++)
                digits = is_digit(*c);
        p->epoch = digits ? strtoul(v, NULL, 10) : 0;
        p->up = digits ? colon + 1 : v;
        dash = strrchr(p->up, '-');
        p->up_end = dash ? dash : end;
        p->rev = dash ? dash + 1 : end;
        p->rev_end = end;
}

int store_version_compare(const char *a, const char *b)
{
        Parsed pa, pb;
        int r;

        parse(a, &pa);
        parse(b, &pb);
        if (pa.epoch != pb.epoch)
                return pa.epoch < pb.epoch ? -1 : 1;
        r = part_compare(pa.up, pa.up_end, pb.up, pb.up_end);
        if (r)
                return r < 0 ? -1 : 1;
        r = part_compare(pa.rev, pa.rev_end, pb.rev, pb.rev_end);
        return r < 0 ? -1 : r > 0 ? 1 : 0;
}

bool store_version_is_valid(const char *v)
{
        size_t n;

        if (!v || !is_digit(v[0]))
                return false;
        n = strlen(v);
        if (n >= STORE_VERSION_MAX)
                return false;
        return strspn(v, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+~:-") ==
               n;
}
