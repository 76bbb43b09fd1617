/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The capability catalogue (docs/design.md section 4, docs/capabilities.md): every right an
 * app may request, its protection level, whether it needs a recent user gesture, and
 * what its scope means. A right is written "name" or "name:scope"
 * ("bus.publish:notes.*", "net.connect:*.example.com:443").
 *
 * Scope patterns (docs/capabilities.md, "Scopes and matching"):
 *   topics and app ids   dot-separated segments; '*' inside a segment matches any run of
 *                        characters within that one segment ("notes.*" matches "notes.a",
 *                        not "notes.a.b"); a segment "**" matches one or more whole
 *                        segments ("notes.**" matches "notes.a" and "notes.a.b", not "notes").
 *   host:port            the host is matched as a dot-separated pattern like a topic
 *                        ("*.example.com" is one label deep, "**.example.com" any depth);
 *                        the port is a number or "*". Lowercase only; no IPv6 literals.
 *   fs roots             a root name, matched exactly (no globs).
 *   ports, network names a port number (net.listen) or an app network's name
 *                        (net.group), matched exactly (no globs).
 * The matcher is base/pattern.c's, shared with the bus (src/ipc): iterative with one
 * backtrack point per level (no recursion, no fnmatch); its work is bounded by the
 * pattern and subject lengths.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/pattern.h"
#include "policy/manifest.h"

/* Bytes of one right "name:scope", as a manifest permission (MANIFEST_STRING_MAX). */
#define CAPABILITY_RIGHT_MAX MANIFEST_STRING_MAX
/* Bytes of a catalogue name. */
#define CAPABILITY_NAME_MAX 32u
/* Segments of a topic / app id / host pattern, and bytes of one segment (a DNS label);
 * '*' wildcards in one pattern ("**" counts once). The matcher's (base/pattern.h). */
#define CAPABILITY_SEGMENTS_MAX  PATTERN_SEGMENTS_MAX
#define CAPABILITY_SEGMENT_MAX   PATTERN_SEGMENT_MAX
#define CAPABILITY_WILDCARDS_MAX PATTERN_WILDCARDS_MAX
/* Bytes of an fs root name. */
#define CAPABILITY_ROOT_MAX 32u

/* Android's protection levels (PermissionInfo.protectionLevel). */
typedef enum CapabilityLevel {
        CAPABILITY_NORMAL,    /* granted at install when requested */
        CAPABILITY_DANGEROUS, /* needs a user grant; may be one-time; revocable */
        CAPABILITY_SIGNATURE, /* only for bundles signed by a trusted key */
} CapabilityLevel;

/* What the part after ':' is. */
typedef enum CapabilityScopeKind {
        CAPABILITY_SCOPE_NONE,      /* the right takes no scope */
        CAPABILITY_SCOPE_TOPIC,     /* bus topic pattern: [A-Za-z0-9_-] segments, globs */
        CAPABILITY_SCOPE_APP_ID,    /* app id pattern: manifest id labels, globs */
        CAPABILITY_SCOPE_HOST_PORT, /* host pattern ':' port or '*' */
        CAPABILITY_SCOPE_ROOT,      /* a named user-file root: [a-z][a-z0-9_-]*, exact */
        CAPABILITY_SCOPE_PORT,      /* a port number 1-65535, exact */
        CAPABILITY_SCOPE_NAME,      /* an app network's name: [a-z][a-z0-9_-]*, exact */
} CapabilityScopeKind;

/* One catalogue entry. */
typedef struct CapabilityInfo {
        const char *name;
        unsigned bit; /* index of its bit in a CapabilityMask; in-memory only, never stored */
        CapabilityLevel level;
        bool gesture;              /* also needs a user gesture within GRANTS_GESTURE_WINDOW */
        CapabilityScopeKind scope; /* CAPABILITY_SCOPE_NONE: "name:x" is an error */
        bool scope_required;       /* false: the bare name means every scope */
        const char *scope_meaning; /* for docs and prompts; NULL when no scope */
        const char *description;   /* one line, for docs and prompts */
        /* The scope names other apps' topics or ids (bus.publish, bus.subscribe, bus.send,
         * app.launch): the level above holds only within the app's own namespace or
         * what the owner exports; beyond it the right is dangerous (docs/capabilities.md,
         * "Reaching other apps"). */
        bool reaches_apps;
} CapabilityInfo;

/* One bit per catalogue name (docs/design.md section 4): the fast first check. */
typedef uint64_t CapabilityMask;

/* A parsed right: the catalogue entry and the scope text ("" when unscoped). */
typedef struct CapabilityRight {
        const CapabilityInfo *cap;
        char scope[CAPABILITY_RIGHT_MAX];
} CapabilityRight;

/* The catalogue: *ret_n entries (at most 64), in bit order. Never NULL. */
const CapabilityInfo *capability_catalogue(size_t *ret_n);

/*
 * The entry named name (len bytes, not necessarily NUL-terminated), or NULL if the
 * catalogue has none.
 */
const CapabilityInfo *capability_lookup(const char *name, size_t len);

/*
 * The catalogue entry whose name is nearest to name (len bytes, not necessarily
 * NUL-terminated), for a "did you mean" hint: within SUGGEST_DISTANCE edits
 * (base/suggest.h; "fs.wrte" is one from "fs.write"), or NULL when no name is that
 * near or name is itself in the catalogue.
 */
const CapabilityInfo *capability_suggest(const char *name, size_t len);

/* The mask bit of c. */
static inline CapabilityMask capability_bit(const CapabilityInfo *c)
{
        return (CapabilityMask)1 << c->bit;
}

/*
 * Parses text, "name" or "name:scope" (at most CAPABILITY_RIGHT_MAX - 1 bytes), into
 * *ret. The scope (everything after the first ':') is checked against the right's
 * scope grammar; a scope may itself be a pattern.
 * Returns 0, -ENOENT (no such right), -EINVAL (a scope on a right that takes none, a
 * missing required scope, or bad scope syntax), -ENAMETOOLONG (text too long). On
 * failure, if why is not NULL, *why is set to a static English reason.
 */
int capability_right_parse(const char *text, CapabilityRight *ret, const char **why);

/*
 * True if subject matches pattern under the rules of kind (header comment). subject
 * may itself be a pattern (a subscription, a request "for any host"): it matches only
 * if every string it matches is matched by pattern; this is conservative, never
 * wider (a subject "**" segment is covered only by a pattern "**" segment). Both
 * strings must pass the kind's syntax check, else false. Work is at most
 * O(len(pattern) * len(subject)) character comparisons per wildcard.
 */
bool capability_scope_match(CapabilityScopeKind kind, const char *pattern, const char *subject);

/*
 * True if holding granted gives asked: same right, and either the right has no
 * scope, granted is unscoped (every scope), or granted's scope matches asked's
 * (capability_scope_match). An unscoped asked is covered only by an unscoped granted.
 */
bool capability_right_covers(const CapabilityRight *granted, const CapabilityRight *asked);

/*
 * The mask of the names in rights (a NULL-terminated list of "name[:scope]"; NULL is
 * empty). Returns 0 and *ret_mask, or the first parse error (capability_right_parse).
 */
int capability_mask_of(char *const *rights, CapabilityMask *ret_mask);

/*
 * Checks every permission of m against the catalogue. Returns 0, or the error of the
 * first bad one (capability_right_parse); then, if not NULL, *bad points to that
 * permission string inside m and *why to the reason.
 */
int capability_check_manifest(const Manifest *m, const char **bad, const char **why);

/*
 * True if every topic (kind CAPABILITY_SCOPE_TOPIC) or app id (CAPABILITY_SCOPE_APP_ID)
 * that scope can match lies in the namespace of app id: for topics, id itself or a
 * topic under it ("org.a.clock" owns "org.a.clock" and "org.a.clock.tick"; a pattern
 * qualifies when its first segments are id's, literally, so "org.a.clock.*" does and
 * "org.a.*.tick" does not); for app ids, id exactly. As D-Bus well-known names and
 * Android permission names, the reverse-DNS id is the owner's prefix.
 * False for other kinds and for strings that do not parse.
 */
bool capability_scope_within(CapabilityScopeKind kind, const char *scope, const char *id);

/*
 * True if scope (a topic or app id pattern of kind) might match id or, for topics, a
 * topic under id. Conservative: true whenever it cannot rule it out (a "**" before
 * the end of id), never false when it could match. False for strings that do not
 * parse.
 */
bool capability_scope_may_reach(CapabilityScopeKind kind, const char *scope, const char *id);

/*
 * Checks one entry of a manifest's "exports" for the app id and writes it, normalized
 * to "name:scope", into buf (size bytes, at least CAPABILITY_RIGHT_MAX): a right that
 * reaches apps (bus.publish, bus.subscribe, bus.send, app.launch) whose scope lies in
 * id's namespace (capability_scope_within); a bare "bus.send" or "app.launch" means
 * "name:<id>". Returns 0, or -EINVAL / -ENOENT / -ENAMETOOLONG with *why (static
 * English) when not NULL.
 */
int capability_export_parse(const char *text, const char *id, char *buf, size_t size,
                            const char **why);

/*
 * The level of right r (parsed), which for most rights is its catalogue entry's: a
 * net.connect right whose host is a pattern ("net.connect:*.example.com:443"), or an
 * address that is not public (net/addr.h: "net.connect:127.0.0.1:5432"), is
 * CAPABILITY_DANGEROUS: the user grants it, a manifest alone never does
 * (docs/capabilities.md, docs/network.md "Rights"). NULL or an unparsed right: normal.
 */
CapabilityLevel capability_right_level(const CapabilityRight *r);

/* "normal", "dangerous", "signature". */
const char *capability_level_to_string(CapabilityLevel level);
