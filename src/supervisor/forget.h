/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Forgetting an app (docs/security.md, "App identity"): what `cella forget` does and
 * `cella remove` without --keep-data (docs/store.md, "Remove"), written once.
 */

struct Grants;
struct State;

/* What app_forget() was doing when it failed. */
typedef enum AppForgetStep {
        APP_FORGET_GRANTS, /* grants_forget(): grants.db */
        APP_FORGET_KEYS,   /* keystore_forget_app(): its keys in keystore.db */
        APP_FORGET_QUEUES, /* queue_store_forget_owner_at(): its queues in ipc-queues.db */
        APP_FORGET_DATA,   /* storage_release(): unmounting its /data */
        APP_FORGET_STATE,  /* state_app_forget(): its uid, claim and apps/<id>/ */
} AppForgetStep;

/*
 * Forgets app id of state_dir: its requested set, grants, exports and gesture
 * (grants.db) first (an app whose data is gone but whose rights stay would be worse
 * than the reverse), then its keys in the keystore (keystore.db: a later app given
 * the same id must not inherit them), then the persistent ipc queues it created
 * (ipc-queues.db, with their offers and messages; a store another kernel holds,
 * -EBUSY, is skipped: that kernel drops them, broker_ipc_queue_forget_owner(), as
 * cellad's Remove does), then takes its /data file system down (storage_release()),
 * then its uid and claim (state.db) and apps/<id>/ with everything in it. g and st are state_dir's,
 * opened by the caller. The app must not be running (the caller checks). Returns 1 if anything was
 * there, 0 if the app was unknown, or -errno with *ret_step (if not NULL) saying which step failed
 * (the steps before it are done).
 */
int app_forget(const char *state_dir, struct Grants *g, struct State *st, const char *id,
               AppForgetStep *ret_step);
