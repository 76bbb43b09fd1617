/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Grant decisions for a running app (docs/capabilities.md, "Decisions"; docs/design.md
 * sections 4 and 10): one app's grants and requested rights as grants.db holds them, parsed
 * once into a GrantCache, and policy_decide(), which answers from it what
 * grants_check() would answer from the database. The broker keeps one cache per
 * attached app and reloads it when the grants change; the database is read only
 * where the cache cannot answer (gesture rights, one-time grants to consume).
 *
 * Rights come in parsed (capability_right_parse(), where they enter: a request's
 * fields, a perm.query): no layer below parses them again.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/capability.h"
#include "policy/grants.h"

/* One app's grants, as grants_list() and grants_requested() gave them, parsed. */
typedef struct GrantCache {
        Grant *grants;           /* sorted by right, as grants_list() gave them */
        CapabilityRight *parsed; /* parallel to grants; .cap NULL if it does not parse */
        size_t n_grants;
        CapabilityMask unscoped; /* names with a permanent grant without scope */
        CapabilityMask scoped;   /* names with a permanent scoped grant */
        CapabilityMask once;     /* names with a one-time grant */
        char **requested;        /* NULL-terminated, never NULL; empty if never installed */
        CapabilityRight *req_parsed;
        size_t n_requested;
        bool signed_ok; /* the bundle was signed by a trusted key at install */
} GrantCache;

/*
 * Loads app_id's grants and requested set from g into *ret (an app never installed
 * has none of either). Returns 0, or the -errno of grants_list() / grants_requested()
 * (-EIO, -ENOMEM, -EINVAL a bad id); *ret is untouched on failure.
 */
int grant_cache_load(Grants *g, const char *app_id, GrantCache *ret);

/* Frees what gc holds and zeroes it; a zeroed cache may be cleared again. */
void grant_cache_clear(GrantCache *gc);

/*
 * What the cache says of asked, as grants_check() would decide, without consuming a
 * one-time grant and ignoring gestures: 0 granted (*ret_one_time: only a one-time
 * grant covers it); -EACCES requested but not granted; -EPERM never (not requested,
 * signature-level and unsigned, or asked NULL or not a right). *ret_why is the
 * reason, a static English phrase (grants_reason_to_string()). Outputs may be NULL.
 */
int policy_right_state(const GrantCache *gc, const CapabilityRight *asked, bool *ret_one_time,
                       const char **ret_why);

/*
 * Decides whether app_id, whose grants gc holds, may use asked now (now_ms: wall
 * clock, ms since the epoch; negative: grants_now_ms(), read only when the database
 * must be asked, which keeps the clock off the common path). Permanent grants are decided from the
 * cache; gesture rights, and rights only a one-time grant covers, go to grants_check_right() on g,
 * which reads the gesture (GRANTS_GESTURE_WINDOW_MS) and, if consume, takes the
 * one-time grant: then gc is reloaded from g. Without consume a one-time grant
 * counts as held and is kept, and a gesture right needs a recent gesture.
 * Returns 0 (allow), -EACCES (deny: could be granted, or needs a gesture), -EPERM
 * (never), each with *ret_why (static English, grants_reason_to_string()); or
 * another -errno when grants.db fails (the caller must refuse, and say so).
 */
int policy_decide(GrantCache *gc, Grants *g, const char *app_id, const CapabilityRight *asked,
                  bool consume, int64_t now_ms, const char **ret_why);
