/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Grant decisions from a per-app cache (decide.h). The masks answer the common case,
 * a permanent unscoped grant, with one AND; scoped and one-time grants are then
 * matched one by one (capability_right_covers()), at most GRANTS_PER_APP_MAX of them.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/strv.h"
#include "policy/decide.h"

void grant_cache_clear(GrantCache *gc)
{
        free(gc->grants);
        free(gc->parsed);
        strv_free(gc->requested);
        free(gc->req_parsed);
        *gc = (GrantCache){};
}

int grant_cache_load(Grants *g, const char *app_id, GrantCache *ret)
{
        GrantCache gc = {};
        char **req = NULL;
        bool is_signed = false;
        int r;

        r = grants_list(g, app_id, &gc.grants, &gc.n_grants);
        if (r < 0)
                return r;
        r = grants_requested(g, app_id, &req, &is_signed);
        if (r == -ENOENT) {
                req = calloc(1, sizeof(char *));
                is_signed = false;
                r = req ? 0 : -ENOMEM;
        }
        if (r < 0) {
                grant_cache_clear(&gc);
                return r;
        }
        gc.requested = req;
        gc.signed_ok = is_signed;
        gc.n_requested = strv_length(req);

        gc.parsed = calloc(gc.n_grants + 1, sizeof(CapabilityRight));
        gc.req_parsed = calloc(gc.n_requested + 1, sizeof(CapabilityRight));
        if (!gc.parsed || !gc.req_parsed) {
                grant_cache_clear(&gc);
                return -ENOMEM;
        }
        for (size_t i = 0; i < gc.n_grants; i++) {
                CapabilityRight *p = &gc.parsed[i];

                if (capability_right_parse(gc.grants[i].right, p, NULL) < 0) {
                        p->cap = NULL;
                        continue;
                }
                if (gc.grants[i].one_time)
                        gc.once |= capability_bit(p->cap);
                else if (p->scope[0] == 0)
                        gc.unscoped |= capability_bit(p->cap);
                else
                        gc.scoped |= capability_bit(p->cap);
        }
        for (size_t i = 0; i < gc.n_requested; i++)
                if (capability_right_parse(gc.requested[i], &gc.req_parsed[i], NULL) < 0)
                        gc.req_parsed[i].cap = NULL;
        *ret = gc;
        return 0;
}

/* True if a grant of the cache covers asked: permanent ones, and one-time ones too
 * if with_once (then *ret_once tells whether only one-time grants do). */
static bool cache_covers(const GrantCache *gc, const CapabilityRight *asked, bool with_once,
                         bool *ret_once)
{
        CapabilityMask bit = capability_bit(asked->cap);
        bool once = false;

        if (ret_once)
                *ret_once = false;
        if (gc->unscoped & bit)
                return true;
        if (!((gc->scoped | (with_once ? gc->once : 0)) & bit))
                return false;
        for (size_t i = 0; i < gc->n_grants; i++) {
                if (gc->parsed[i].cap != asked->cap ||
                    !capability_right_covers(&gc->parsed[i], asked))
                        continue;
                if (!gc->grants[i].one_time)
                        return true;
                if (with_once)
                        once = true;
        }
        if (ret_once)
                *ret_once = once;
        return once;
}

/* The refusal grants_check would give for a right no grant covers. */
static int cache_refusal(const GrantCache *gc, const CapabilityRight *asked, const char **ret_why)
{
        bool requested = false;

        for (size_t i = 0; i < gc->n_requested && !requested; i++)
                requested =
                        gc->req_parsed[i].cap && capability_right_covers(&gc->req_parsed[i], asked);
        if (!requested) {
                *ret_why = grants_reason_to_string(GRANTS_NOT_REQUESTED);
                return -EPERM;
        }
        if (asked->cap->level == CAPABILITY_SIGNATURE && !gc->signed_ok) {
                *ret_why = grants_reason_to_string(GRANTS_NOT_SIGNED);
                return -EPERM;
        }
        *ret_why = grants_reason_to_string(GRANTS_NOT_GRANTED);
        return -EACCES;
}

int policy_right_state(const GrantCache *gc, const CapabilityRight *asked, bool *ret_one_time,
                       const char **ret_why)
{
        const char *why = NULL;
        bool once = false;
        int r;

        if (!asked || !asked->cap) {
                why = grants_reason_to_string(GRANTS_INVALID);
                r = -EPERM;
        } else if (cache_covers(gc, asked, true, &once))
                r = 0;
        else
                r = cache_refusal(gc, asked, &why);
        if (ret_one_time)
                *ret_one_time = r == 0 && once;
        if (ret_why)
                *ret_why = why ?: grants_reason_to_string(GRANTS_ALLOWED);
        return r;
}

int policy_decide(GrantCache *gc, Grants *g, const char *app_id, const CapabilityRight *asked,
                  bool consume, int64_t now_ms, const char **ret_why)
{
        GrantsDecision d;
        bool once = false;
        int r;

        *ret_why = grants_reason_to_string(GRANTS_ALLOWED);
        if (!asked || !asked->cap) {
                *ret_why = grants_reason_to_string(GRANTS_INVALID);
                return -EPERM;
        }
        if (!asked->cap->gesture && cache_covers(gc, asked, false, NULL))
                return 0;
        if (!cache_covers(gc, asked, true, &once))
                return cache_refusal(gc, asked, ret_why);
        if (!asked->cap->gesture && once && !consume)
                return 0;
        if (now_ms < 0) /* read here, off the fast path above */
                now_ms = grants_now_ms();
        if (!consume) { /* a gesture right: whether a gesture is recent enough */
                int64_t at;

                r = grants_gesture_last(g, app_id, &at);
                if (r == 0 && at <= now_ms && now_ms - at <= GRANTS_GESTURE_WINDOW_MS)
                        return 0;
                if (r < 0 && r != -ENOENT)
                        return r;
                *ret_why = grants_reason_to_string(GRANTS_NO_GESTURE);
                return -EACCES;
        }
        r = grants_check_right(g, app_id, asked, now_ms, &d);
        if (r != 0 && r != -EACCES && r != -EPERM)
                return r;
        *ret_why = grants_reason_to_string(d.reason);
        if (d.one_time_consumed) {
                GrantCache fresh;

                if (grant_cache_load(g, app_id, &fresh) == 0) {
                        grant_cache_clear(gc);
                        *gc = fresh;
                }
        }
        return r;
}
