/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Forgetting an app (forget.h): grants, keys, queues, then /data, then its uid and folder. */
#include <errno.h>

#include "base/log.h"
#include "ipc/queue-store.h"
#include "keystore/keystore.h"
#include "policy/grants.h"
#include "supervisor/forget.h"
#include "supervisor/state.h"
#include "supervisor/storage.h"

int app_forget(const char *state_dir, Grants *g, State *st, const char *id, AppForgetStep *ret_step)
{
        char why[QUEUE_STORE_WHY_MAX];
        int r, r2;

        r2 = grants_forget(g, id);
        if (r2 < 0) {
                if (ret_step)
                        *ret_step = APP_FORGET_GRANTS;
                return r2;
        }
        r = keystore_forget_app(state_dir, id);
        if (r < 0) {
                if (ret_step)
                        *ret_step = APP_FORGET_KEYS;
                return r;
        }
        if (r > 0)
                r2 = 1;
        r = queue_store_forget_owner_at(state_dir, id, why);
        if (r == -EBUSY)
                log_debug("%s: its persistent queues are dropped by the kernel holding them: %s",
                          id, why);
        else if (r < 0) {
                log_error("%s: %s", id, why);
                if (ret_step)
                        *ret_step = APP_FORGET_QUEUES;
                return r;
        } else if (r > 0)
                r2 = 1;
        /* /data is a file system of its own, mounted between runs: take it down, or
         * the removal below would empty it and then fail on its mount point. */
        r = storage_release(state_dir, id);
        if (r < 0) {
                if (ret_step)
                        *ret_step = APP_FORGET_DATA;
                return r;
        }
        r = state_app_forget(st, id);
        if (r < 0) {
                if (ret_step)
                        *ret_step = APP_FORGET_STATE;
                return r;
        }
        return r > 0 || r2 > 0 ? 1 : 0;
}
