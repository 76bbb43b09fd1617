/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Grants: what each app requested (its manifest's permissions, recorded at install),
 * what it was granted (at install, by the user, by a signature), and the user
 * gestures that gate camera and microphone. Kept in <state>/grants.db (SQLite), so
 * grants survive restarts and are shared by every cella process on the state
 * directory (docs/design.md sections 4 and 9, docs/capabilities.md).
 *
 * Decisions (grants_check): allowed; -EACCES, the right could be granted but is not
 * (or needs a gesture); -EPERM, it never can be (the manifest does not request it, or
 * it is signature-level and the bundle is not signed by a trusted key). A manifest
 * never widens anything at run time: a right is grantable only if the requested set
 * recorded by grants_install() covers it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/capability.h"
#include "policy/manifest.h"

#define GRANTS_DB_FILE "grants.db"

/* Grant rows one app may hold (grants_grant refuses more with -ENOSPC). A manifest
 * requests at most MANIFEST_LIST_MAX rights; the rest is room for narrower user
 * grants ("net.connect:api.example.com:443" under "net.connect:*.example.com:443"). */
#define GRANTS_PER_APP_MAX (2u * MANIFEST_LIST_MAX)

/*
 * How recent a user gesture must be for a gesture-gated right (camera, microphone),
 * in milliseconds. 5 s, as Chromium's transient user activation
 * (kActivationLifespan in third_party/blink/common/frame/user_activation_state.cc:
 * "long enough to allow network round trips ... not too long to make an unattended
 * page feel activated") and Firefox's dom.user_activation.transient.timeout.
 */
#define GRANTS_GESTURE_WINDOW_MS 5000

typedef struct Grants Grants;

/* Who made a grant; stored as "install", "user", "signature". */
typedef enum GrantSource {
        GRANT_BY_INSTALL,   /* a normal right the manifest requested */
        GRANT_BY_USER,      /* `cella grant`, or the user's answer to a prompt */
        GRANT_BY_SIGNATURE, /* a signature right of a bundle signed by a trusted key */
} GrantSource;

typedef struct Grant {
        char right[CAPABILITY_RIGHT_MAX]; /* "name" or "name:scope", as granted */
        int64_t granted_at_ms;            /* wall clock, ms since the Unix epoch */
        bool one_time;                    /* removed by the first check it allows */
        GrantSource granted_by;
} Grant;

/* Why grants_check decided as it did. */
typedef enum GrantsReason {
        GRANTS_ALLOWED,       /* 0 */
        GRANTS_NOT_GRANTED,   /* -EACCES: requested, not granted (a prompt may grant it) */
        GRANTS_NO_GESTURE,    /* -EACCES: granted, but no user gesture in the window */
        GRANTS_NOT_REQUESTED, /* -EPERM: the manifest does not request it (or no install) */
        GRANTS_NOT_SIGNED,    /* -EPERM: signature-level, bundle not signed by a trusted key */
        GRANTS_INVALID,       /* -EPERM: not a right of the catalogue, or bad scope syntax */
} GrantsReason;

typedef struct GrantsDecision {
        GrantsReason reason;
        CapabilityLevel level;            /* of the right asked (normal when GRANTS_INVALID) */
        bool one_time_consumed;           /* the grant used was one-time and is now gone */
        char grant[CAPABILITY_RIGHT_MAX]; /* the grant that allowed it; "" when refused */
} GrantsDecision;

/*
 * Opens (creating if needed, mode 0600) <state_dir>/grants.db; state_dir is created
 * (mode 0711) if missing, and its trusted-keys/ folder (mode 0755, signature.h).
 * Returns 0 and *ret, -EPROTONOSUPPORT if a newer cella wrote the file, -EROFS or
 * -EACCES when state_dir cannot be written (access(2)), -EIO (SQLite), -ENOMEM, or
 * -errno of mkdir.
 */
int grants_open(const char *state_dir, Grants **ret);

/* Closes g; takes NULL; returns NULL. */
Grants *grants_free(Grants *g);

/*
 * Records m's permissions as the app's requested set, replacing the previous one,
 * and whether its bundle is signed by a trusted key (signed_ok, from
 * signature_verify). Grants every newly requested normal right (GRANT_BY_INSTALL;
 * one that reaches other apps only if it qualifies, see grants_install_as) and, when
 * signed_ok, every signature right not yet granted (GRANT_BY_SIGNATURE);
 * dangerous rights wait for the user. A right requested before is not granted again,
 * so a user's revoke of a normal right outlives restarts. Grants the new set no
 * longer covers are deleted, and so are signature grants when !signed_ok.
 * One IMMEDIATE transaction. now_ms: wall clock in ms since the epoch.
 * Returns 0; -EINVAL (bad id, or a permission not in the catalogue: then, if not
 * NULL, *bad points to it inside m and *why to the reason), -EIO, -EPROTONOSUPPORT.
 */
int grants_install(Grants *g, const Manifest *m, bool signed_ok, int64_t now_ms, const char **bad,
                   const char **why);

/*
 * grants_install() knowing the trusted key that verified the bundle: key_id (the
 * signature's key id, SIGNATURE_KEY_ID_CHARS hex; NULL or "" when unknown, ignored
 * unless signed_ok) is recorded, and apps signed by the same key reach each other's
 * namespaces as their own (Android's signature level). Also records m->exports (the
 * rights other apps may hold on its namespace, normalized), and, since this changes
 * what others reach, brings every app's reaching rights in line
 * (docs/capabilities.md, "Reaching other apps"): a normal right that reaches other
 * apps is granted by install only while it qualifies, and waits otherwise.
 * Returns 1 if grants.db changed (other apps' grants may have too: a kernel re-reads
 * its apps' grants), 0 if the app was installed already as it is; else as
 * grants_install(): an export that is bad (not a reaching right, or a scope outside
 * m->id's namespace) is -EINVAL with *bad and *why.
 */
int grants_install_as(Grants *g, const Manifest *m, bool signed_ok, const char *key_id,
                      int64_t now_ms, const char **bad, const char **why);

/*
 * The level right has for app_id now: its catalogue level, except that a normal right
 * reaching other apps (bus topics, bus.send, app.launch) beyond what is the app's own
 * or exported to it is CAPABILITY_DANGEROUS. Returns 0 and *ret_level, -EINVAL (bad
 * id or right), -EIO, -ENOMEM.
 */
int grants_level(Grants *g, const char *app_id, const char *right, CapabilityLevel *ret_level);

/*
 * Forgets app_id: its requested set, grants, exports and gesture. Others' rights that
 * reached it through its exports wait again. One IMMEDIATE transaction. Returns 1 if
 * it was installed, 0 if not, -EINVAL, -EIO.
 */
int grants_forget(Grants *g, const char *app_id);

/*
 * The requested set recorded for app_id: *ret_requested (NULL-terminated, caller
 * frees with strv_free) and *ret_signed (signed_ok at install). Either output may be
 * NULL. Returns 0, -ENOENT (never installed), -EINVAL (bad id), -EIO, -ENOMEM.
 */
int grants_requested(Grants *g, const char *app_id, char ***ret_requested, bool *ret_signed);

/*
 * Grants right ("name" or "name:scope") to app_id. The requested set must cover it
 * (a user may grant a narrower scope than the manifest asked for, never a wider
 * one). Granting a right already held for good changes nothing (a permanent grant is
 * never turned into a one-time one); a one-time grant granted again takes the new
 * grant's time, source and one_time flag.
 * Returns 0; -EINVAL (bad id or right syntax), -ENOENT (app never installed, or no
 * such right: check with capability_right_parse first to tell them apart),
 * -EPERM (not requested, or signature-level and not signed), -ENOSPC (the app holds
 * GRANTS_PER_APP_MAX grants), -EIO.
 */
int grants_grant(Grants *g, const char *app_id, const char *right, bool one_time, GrantSource by,
                 int64_t now_ms);

/*
 * Revokes every grant of app_id that right covers: "net.connect" (no scope) revokes all
 * net.connect grants; "net.connect:**:*" the same; "net.connect:a.example.com:443" that one
 * only (a wider grant "net.connect:*.example.com:443" stays: there are no deny rules).
 * If ret_revoked is not NULL it receives the revoked grants' rights (NULL-terminated,
 * caller frees with strv_free): the broker closes the handles opened under them.
 * Returns the number revoked (0: nothing matched), -EINVAL, -ENOENT (no such
 * right), -EIO, -ENOMEM.
 */
int grants_revoke(Grants *g, const char *app_id, const char *right, char ***ret_revoked);

/*
 * The grants of app_id: *ret (caller frees; NULL when there are none) and *ret_n,
 * sorted by right. Returns 0 (an unknown app has none), -EINVAL, -EIO, -ENOMEM,
 * -E2BIG (a hand-edited file with more rows than cella writes).
 */
int grants_list(Grants *g, const char *app_id, Grant **ret, size_t *ret_n);

/*
 * Decides whether app_id may use requested_right now (a concrete right, or a pattern
 * it would act on, e.g. a subscription "bus.subscribe:clock.*"), consuming a one-time
 * grant when only a one-time grant allows it (a permanent grant is preferred).
 * Gesture-gated rights also need a gesture within GRANTS_GESTURE_WINDOW_MS before
 * now_ms (wall clock, ms since the epoch; a gesture "in the future" does not count).
 * requested_right comes from an app: anything unparsable is a refusal, not an error.
 * Returns 0 (allowed), -EACCES or -EPERM, and then fills *ret_decision if not NULL;
 * or -EINVAL (bad app id), -EIO, -ENOMEM, -E2BIG, -EPROTONOSUPPORT, with
 * *ret_decision untouched. (*ret_decision is written on refusals too, unlike other
 * ret_ outputs: the broker audits why.)
 */
int grants_check(Grants *g, const char *app_id, const char *requested_right, int64_t now_ms,
                 GrantsDecision *ret_decision);

/*
 * grants_check() for a right already parsed (capability_right_parse()): the form the
 * layers above pass, so a right is parsed once where it enters. asked NULL, or with no
 * catalogue entry, is refused as GRANTS_INVALID. Same returns as grants_check().
 */
int grants_check_right(Grants *g, const char *app_id, const CapabilityRight *asked, int64_t now_ms,
                       GrantsDecision *ret_decision);

/*
 * Records a user gesture for app_id at now_ms (ms since the epoch); one row per app,
 * the latest. Returns 0, -EINVAL (bad id), -EIO.
 */
int grants_gesture_record(Grants *g, const char *app_id, int64_t now_ms);

/*
 * The time of app_id's last gesture, in ms since the epoch. Returns 0, -ENOENT (none
 * recorded), -EINVAL, -EIO.
 */
int grants_gesture_last(Grants *g, const char *app_id, int64_t *ret_ms);

/* "install", "user", "signature". */
const char *grant_source_to_string(GrantSource s);

/* "allowed", "not granted", "no recent user gesture", "not requested by the manifest",
 * "not signed by a trusted key", "no such right". */
const char *grants_reason_to_string(GrantsReason r);

/* The current wall-clock time in ms since the epoch (CLOCK_REALTIME). */
int64_t grants_now_ms(void);

static inline void grants_freep(Grants **g)
{
        grants_free(*g);
}
