/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A user's grant and its audit record, made in one place: `cella grant` (src/cli/grant.c)
 * and the answer to a permission prompt (src/broker/calls/perm.c, answered by the
 * supervisor's prompt, src/supervisor/prompt.c, or any BrokerHost) both grant through
 * grants_grant_recorded(), so the grant and the record that says it cannot drift
 * apart (docs/audit.md, event "grant").
 *
 * The record goes to a sink, not to an AuditLog: the broker appends to its own log
 * (counting failures, broker_app_audit()); the CLI opens the state directory's log
 * only once there is a record to write.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy/grants.h"

/*
 * Where a record goes: appends fields (borrowed) as an event record for app_id.
 * Returns 0 or -errno (the record was not written).
 */
typedef int (*GrantsAuditSink)(void *userdata, const char *app_id, const char *event,
                               json_t *fields);

/*
 * Grants right to app_id as grants_grant() does (by GRANT_BY_USER, at now_ms: wall
 * clock, ms since the epoch), then, if it was granted, writes one AUDIT_EVENT_GRANT
 * record through sink (NULL: none) of {"what": "granted", "right", "one_time", "by":
 * via}, via naming who answered ("cli", "prompt"). Returns grants_grant()'s result;
 * the record's own result goes to *ret_audit_error when not NULL (0 when written or
 * not wanted; -ENOMEM when the record could not be built; the sink's -errno).
 */
int grants_grant_recorded(Grants *g, const char *app_id, const char *right, bool one_time,
                          const char *via, int64_t now_ms, GrantsAuditSink sink, void *userdata,
                          int *ret_audit_error);
