/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "Did you mean" hints: the nearest known word to a mistyped one. */
#include <string.h>

#include "base/suggest.h"

size_t suggest_distance(const char *a, size_t la, const char *b, size_t lb)
{
        size_t d[SUGGEST_WORD_MAX + 1][SUGGEST_WORD_MAX + 1];

        if (la > SUGGEST_WORD_MAX || lb > SUGGEST_WORD_MAX)
                return (size_t)-1;
        for (size_t i = 0; i <= la; i++)
                d[i][0] = i;
        for (size_t j = 0; j <= lb; j++)
                d[0][j] = j;
        for (size_t i = 1; i <= la; i++)
                for (size_t j = 1; j <= lb; j++) {
                        size_t cost = a[i - 1] != b[j - 1], best = d[i - 1][j - 1] + cost;

                        if (d[i - 1][j] + 1 < best)
                                best = d[i - 1][j] + 1;
                        if (d[i][j - 1] + 1 < best)
                                best = d[i][j - 1] + 1;
                        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                            d[i - 2][j - 2] + 1 < best)
                                best = d[i - 2][j - 2] + 1;
                        d[i][j] = best;
                }
        return d[la][lb];
}

const char *suggest_nearest(const char *word, size_t len, const char *const *known, size_t n)
{
        const char *best = NULL;
        size_t best_d = SUGGEST_DISTANCE + 1;

        if (len > SUGGEST_WORD_MAX)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                size_t kl = strlen(known[i]), d;

                if (kl > SUGGEST_WORD_MAX)
                        continue;
                d = suggest_distance(word, len, known[i], kl);
                if (d <= SUGGEST_DISTANCE && d < kl && d < best_d) {
                        best = known[i];
                        best_d = d;
                }
        }
        return best;
}
