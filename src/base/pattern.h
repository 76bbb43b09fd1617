/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Dotted names and the patterns over them: app ids, bus topics and host names, and
 * the one matcher every layer uses for them (the capability scopes of src/policy,
 * the bus's subscriptions in src/ipc). Depends on libc only.
 *
 * A name is '.'-separated segments. In a pattern, '*' inside a segment matches any
 * run of characters within that one segment ("notes.*" matches "notes.a", not
 * "notes.a.b"); a segment "**" matches one or more whole segments ("notes.**" matches
 * "notes.a" and "notes.a.b", not "notes"). Syntax per kind of name:
 *   PATTERN_TOPIC   segments of [A-Za-z0-9_-]
 *   PATTERN_APP_ID  labels of [A-Za-z0-9_-], not starting with a digit or '-'
 *   PATTERN_HOST    DNS labels, lowercase only: [a-z0-9-]
 * The matcher is iterative with one backtrack point per level (no recursion, no
 * fnmatch(3), whose glibc form backtracks recursively on '*' and knows nothing of
 * segments): its work is bounded by the product of the pattern and subject lengths,
 * and those and the wildcard count have the bounds below.
 */

#include <stdbool.h>
#include <stddef.h>

/* Segments of a pattern or name, and bytes of one segment (a DNS label, RFC 1035). */
#define PATTERN_SEGMENTS_MAX 32u
#define PATTERN_SEGMENT_MAX  63u
/* '*' wildcards in one pattern ("**" counts once): keeps the matcher's worst case small. */
#define PATTERN_WILDCARDS_MAX 8u
/* Bytes of the longest string that can pass pattern_split(): 32 segments of 63
 * bytes and the dots between them. */
#define PATTERN_MAX (PATTERN_SEGMENTS_MAX * (PATTERN_SEGMENT_MAX + 1u) - 1u)

/* Bytes of an app id (Flatpak's limit on an application id is 255; cella's is 128). */
#define APP_ID_MAX 128u

typedef enum PatternSyntax {
        PATTERN_TOPIC,
        PATTERN_APP_ID,
        PATTERN_HOST,
} PatternSyntax;

/* One segment of a dotted pattern or name: s[0..len), not NUL-terminated. */
typedef struct PatternSeg {
        const char *s;
        size_t len;
} PatternSeg;

/*
 * Splits s (len bytes) at '.' into segs and checks each segment against syntax: no
 * empty segment, at most PATTERN_SEGMENTS_MAX segments of at most PATTERN_SEGMENT_MAX
 * bytes, '**' only as a whole segment, at most PATTERN_WILDCARDS_MAX wildcards.
 * Returns the segment count (>= 1), or -EINVAL with *why set to a static English
 * reason.
 */
int pattern_split(PatternSyntax syntax, const char *s, size_t len,
                  PatternSeg segs[static PATTERN_SEGMENTS_MAX], const char **why);

/* True if g is the segment "**". */
bool pattern_seg_is_dstar(PatternSeg g);

/*
 * Glob match inside one segment: '*' in p matches any run of characters; a '*' in s
 * is an ordinary character, so only a '*' of p can stand for it (which keeps
 * pattern-against-pattern matching sound). O(p.len * s.len).
 */
bool pattern_seg_match(PatternSeg p, PatternSeg s);

/*
 * True if subject (slen bytes) matches pattern (plen bytes) under syntax (header
 * comment). subject may itself be a pattern (a subscription): it matches only if
 * every name it matches is matched by pattern; conservative, never wider (a subject
 * "**" segment is covered only by a pattern "**" segment). Both must pass
 * pattern_split(), else false.
 */
bool pattern_match(PatternSyntax syntax, const char *pattern, size_t plen, const char *subject,
                   size_t slen);

/*
 * Why id (len bytes) is not a valid app id, or NULL if it is: 2 to APP_ID_MAX bytes;
 * at least two '.'-separated labels (reverse-DNS, as Android's applicationId and
 * Flatpak's app ids); each label 1-63 characters of [A-Za-z0-9_-], not starting with
 * a digit or '-'. The reason is a static English phrase ("it has an empty label").
 * Source: Flatpak's app-id rules (flatpak_is_valid_name) and Android applicationId.
 */
const char *app_id_invalid_reason(const char *id, size_t len);

/* True if id (NUL-terminated; NULL is false) is a valid app id; reads at most
 * APP_ID_MAX + 1 bytes of it. */
bool app_id_is_valid(const char *id);
