/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A user's grant and its audit record (grant-record.h). */
#include <errno.h>

#include "audit/audit.h"
#include "policy/grant-record.h"

int grants_grant_recorded(Grants *g, const char *app_id, const char *right, bool one_time,
                          const char *via, int64_t now_ms, GrantsAuditSink sink, void *userdata,
                          int *ret_audit_error)
{
        json_t *f;
        int r, ar = 0;

        if (ret_audit_error)
                *ret_audit_error = 0;
        r = grants_grant(g, app_id, right, one_time, GRANT_BY_USER, now_ms);
        if (r < 0 || !sink)
                return r;
        /* The same fields whoever answered: `cella audit` shows one shape of grant. */
        f = json_pack("{s:s, s:s, s:b, s:s}", "what", "granted", "right", right, "one_time",
                      one_time, "by", via);
        ar = f ? sink(userdata, app_id, AUDIT_EVENT_GRANT, f) : -ENOMEM;
        json_decref(f);
        if (ret_audit_error)
                *ret_audit_error = ar < 0 ? ar : 0;
        return r;
}
