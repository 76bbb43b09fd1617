/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Dotted names and their patterns (pattern.h). Patterns come from manifests, from
 * apps' requests and from bus subscriptions, so the matcher must stay cheap on
 * hostile input: two iterative greedy matchers with one backtrack point each (the
 * classic wildcard algorithm), one over characters inside a segment, one over
 * segments. Each '*' or '**' only ever moves its single backtrack point forward, so
 * the work is bounded by the product of the lengths.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/pattern.h"

static bool is_alpha(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* Characters of a segment, per syntax; '*' is handled by the caller. */
static bool seg_char_ok(PatternSyntax syntax, char c, bool first)
{
        switch (syntax) {
        case PATTERN_TOPIC:
                return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
        case PATTERN_APP_ID:
                /* app_id_invalid_reason(): a label does not start with a digit or '-'. */
                if (first)
                        return is_alpha(c) || c == '_';
                return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
        case PATTERN_HOST:
                /* Lowercase only: DNS names are case-insensitive, so one spelling is
                 * kept and the broker lowercases what an app asks for. */
                return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-';
        }
        return false;
}

bool pattern_seg_is_dstar(PatternSeg g)
{
        return g.len == 2 && g.s[0] == '*' && g.s[1] == '*';
}

int pattern_split(PatternSyntax syntax, const char *s, size_t len,
                  PatternSeg segs[static PATTERN_SEGMENTS_MAX], const char **why)
{
        size_t n = 0, start = 0, wildcards = 0;

        if (len == 0) {
                *why = "the pattern is empty";
                return -EINVAL;
        }
        for (size_t i = 0; i <= len; i++) {
                if (i < len && s[i] != '.')
                        continue;
                if (i == start) {
                        *why = "empty segment (leading, trailing or doubled '.')";
                        return -EINVAL;
                }
                if (n == PATTERN_SEGMENTS_MAX) {
                        *why = "too many '.'-separated segments";
                        return -EINVAL;
                }
                if (i - start > PATTERN_SEGMENT_MAX) {
                        *why = "a segment is longer than 63 bytes";
                        return -EINVAL;
                }
                segs[n] = (PatternSeg){s + start, i - start};
                if (pattern_seg_is_dstar(segs[n]))
                        wildcards++;
                else
                        for (size_t k = start; k < i; k++) {
                                if (s[k] == '*') {
                                        if (k + 1 < i && s[k + 1] == '*') {
                                                *why = "'**' must be a whole segment";
                                                return -EINVAL;
                                        }
                                        wildcards++;
                                } else if (!seg_char_ok(syntax, s[k], k == start)) {
                                        *why = syntax == PATTERN_HOST
                                                       ? "a host may only hold a-z 0-9 - . and *"
                                               : syntax == PATTERN_APP_ID
                                                       ? "an app id label may only hold A-Z a-z "
                                                         "0-9 _ - and *, not starting with a "
                                                         "digit or '-'"
                                                       : "a topic may only hold A-Z a-z 0-9 _ - . "
                                                         "and *";
                                        return -EINVAL;
                                }
                        }
                n++;
                start = i + 1;
        }
        if (wildcards > PATTERN_WILDCARDS_MAX) {
                *why = "more than 8 wildcards";
                return -EINVAL;
        }
        return (int)n;
}

bool pattern_seg_match(PatternSeg p, PatternSeg s)
{
        size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;

        while (si < s.len) {
                if (pi < p.len && p.s[pi] == '*') {
                        star = pi++;
                        mark = si;
                } else if (pi < p.len && p.s[pi] == s.s[si]) {
                        pi++;
                        si++;
                } else if (star != SIZE_MAX) {
                        pi = star + 1;
                        si = ++mark;
                } else
                        return false;
        }
        while (pi < p.len && p.s[pi] == '*')
                pi++;
        return pi == p.len;
}

/*
 * Segment-level match: a "**" segment of p takes one or more segments of s (read as
 * "any one segment" then "zero or more": the classic algorithm with '?' and '*'); any
 * other segment of p takes exactly one segment of s, by pattern_seg_match(), and never
 * an s segment "**" (which stands for any depth, so no single-segment pattern covers it).
 */
static bool segs_match(const PatternSeg *p, size_t pn, const PatternSeg *s, size_t sn)
{
        size_t pi = 0, si = 0, star = SIZE_MAX, star_end = 0;

        while (si < sn) {
                if (pi < pn && pattern_seg_is_dstar(p[pi])) {
                        star = pi++;
                        star_end = ++si; /* the one segment "**" needs at least */
                } else if (pi < pn && !pattern_seg_is_dstar(s[si]) &&
                           pattern_seg_match(p[pi], s[si])) {
                        pi++;
                        si++;
                } else if (star != SIZE_MAX) {
                        pi = star + 1;
                        si = ++star_end;
                } else
                        return false;
        }
        /* A "**" left over would need a segment that is not there. */
        return pi == pn;
}

bool pattern_match(PatternSyntax syntax, const char *pattern, size_t plen, const char *subject,
                   size_t slen)
{
        PatternSeg ps[PATTERN_SEGMENTS_MAX], ss[PATTERN_SEGMENTS_MAX];
        const char *why;
        int pn, sn;

        if (!pattern || !subject)
                return false;
        pn = pattern_split(syntax, pattern, plen, ps, &why);
        sn = pattern_split(syntax, subject, slen, ss, &why);
        if (pn < 0 || sn < 0)
                return false;
        return segs_match(ps, (size_t)pn, ss, (size_t)sn);
}

const char *app_id_invalid_reason(const char *id, size_t len)
{
        size_t labels = 0, label_len = 0;

        if (len < 2)
                return "it is too short";
        if (len > APP_ID_MAX)
                return "it is longer than 128 bytes";
        for (size_t i = 0; i <= len; i++) {
                char c = i < len ? id[i] : '.';

                if (c == '.') {
                        if (label_len == 0)
                                return "it has an empty label";
                        labels++;
                        label_len = 0;
                        continue;
                }
                if (label_len == 0 && is_digit(c))
                        return "a label starts with a digit";
                if (label_len == 0 && c == '-')
                        return "a label starts with '-'";
                if (!(is_alpha(c) || is_digit(c) || c == '_' || c == '-'))
                        return "it has a character other than A-Z a-z 0-9 _ - and .";
                if (++label_len > PATTERN_SEGMENT_MAX)
                        return "a label is longer than 63 characters";
        }
        if (labels < 2)
                return "it has only one label";
        return NULL;
}

bool app_id_is_valid(const char *id)
{
        if (!id)
                return false;
        return !app_id_invalid_reason(id, strnlen(id, APP_ID_MAX + 1));
}
