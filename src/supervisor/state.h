/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The state directory (docs/design.md section 9): apps/<id>/data, and state.db, the
 * SQLite registry of per-app host uids (Android-style: one uid per app, kept for
 * the app's lifetime so its /data stays its own).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Host ids per app: each app gets a block of 65,536 host uids (and the same gids),
 * as podman's --userns=auto gives each container: id i inside its user namespace is
 * host id base + i, so the app runs as base + SANDBOX_UID and chown or setuid to
 * another id of the block fails with EPERM (no capability), as for any
 * unprivileged user, instead of EINVAL (an unmapped id).
 */
#define STATE_IDS_PER_APP 65536u
/* Where the app's own uid sits in its block: the id it runs as inside (SANDBOX_UID). */
#define STATE_APP_UID_OFFSET 1000u

/*
 * The default host id range for apps' blocks: 0x70010000 up to 0x7FFDFFFF, 4,093
 * blocks. systemd's UIDS-GIDS.md lists 1879048192..2147352575 (0x70000000..
 * 0x7FFDFFFF) as unused by systemd, after the range it hands to containers
 * (524288..1879048191) and before nspawn's mapped root range (0x7FFE0000..), so
 * none of them can collide. The first 65,536 ids of it (0x70000000..0x7000FFFF) are
 * where cella before blocks gave each app one uid: such an app keeps that uid (its
 * files are its own) and gets a block from here for its other ids.
 */
#define STATE_UID_BASE_DEFAULT  0x70010000u
#define STATE_UID_COUNT_DEFAULT 0x0FFD0000u

typedef struct State State;

/*
 * Opens (creating if needed) the state directory at path: mode 0711 (others may
 * traverse, not list), apps/ beneath it, and state.db. uid_base/uid_count: the
 * range of host ids new apps get their blocks from, uid_count a multiple of
 * STATE_IDS_PER_APP (existing allocations are kept even if the range later
 * changes). A new state.db gets its schema here; an existing one is not read
 * until a call needs it, and that call checks the schema version. Returns 0 and
 * *ret, -EINVAL for a bad range, -EROFS or -EACCES when path cannot be written
 * (access(2)), or -errno (mkdir/open) / -EIO (SQLite).
 */
int state_open(const char *path, uid_t uid_base, uint32_t uid_count, State **ret);
State *state_free(State *s);
const char *state_path(const State *s);

/* Whether state_open() made the directory (it says nothing of it: its caller does,
 * where its stderr cannot block it). */
bool state_created(const State *s);

/*
 * Returns in *ret_uid the host uid of app id (mapped to SANDBOX_UID inside) and in
 * *ret_ids_base (if not NULL) the first of its STATE_IDS_PER_APP host ids (inside id
 * i is host id *ret_ids_base + i, but for SANDBOX_UID, which is *ret_uid). On first
 * use it allocates the lowest free block of the range, sharing no id with any other
 * app's block or uid, and the uid at STATE_APP_UID_OFFSET in it; an app recorded
 * before blocks keeps its uid and gets a block now. Recorded in state.db in one
 * IMMEDIATE transaction, so concurrent cella processes never hand out the same ids.
 * The gid equals the uid, the gids the ids. id must be a valid app id
 * (manifest_id_is_valid), as it becomes a path and a cgroup name. A known app's ids
 * are kept in memory in s while state.db's file change counter is unchanged (any
 * commit, by any process or State, empties that cache: state.c, StateUidCache), so a
 * repeated call costs a pread() and an fstat() of state.db, not a query: the answer
 * is the database's at every call. Returns 0, -EINVAL for a bad id, -ENOSPC when the
 * range is full, -EPROTONOSUPPORT if state.db was written by a newer cella, -EIO on
 * a database error.
 */
int state_app_uid(State *s, const char *id, uid_t *ret_uid, uid_t *ret_ids_base);

/*
 * Who installed an app id (docs/security.md, "App identity"): what first claimed it,
 * and what claims it now. An id belongs to its first claimant: a signed bundle is
 * the same app as long as the same trusted key verifies it (from any folder); an
 * unsigned one is its folder, by canonical path (content changes are updates).
 */
typedef struct StateClaim {
        char *id;              /* -ENOTUNIQ only: the recorded app whose namespace holds it */
        char *path;            /* canonical path of the app folder (realpath) */
        uint64_t dev, ino;     /* of the folder, as claimed */
        char *key_id;          /* the trusted key that verified it; NULL: unsigned */
        char *digest;          /* BLAKE2b-256 of manifest.json, hex; NULL: unknown */
        int64_t claimed_at_ms; /* recorded claims only: first claim, wall clock ms */
} StateClaim;

/* What state_app_claim() found. */
typedef enum StateClaimResult {
        STATE_CLAIM_NEW,     /* nobody had the id: recorded, a uid allocated */
        STATE_CLAIM_SAME,    /* the recorded app, unchanged: nothing written */
        STATE_CLAIM_UPDATED, /* the recorded app, changed (content, key bound, moved) */
} StateClaimResult;

/*
 * Claims id for the app described by claim (path required) at now_ms: records it if
 * the id is new (allocating its uid, as state_app_uid) or was allocated by a cella
 * that recorded no claim; accepts the recorded app itself: same key_id if it was
 * recorded signed, else the same path (then a signed claim binds the id to its key
 * from now on), updating path, dev, ino and digest. Two version folders of id in the
 * store (<state>/apps/<id>/<version>, docs/store.md) are the same app: the store
 * checked that the second has the first's signer. One IMMEDIATE transaction
 * (nothing is written when nothing changed).
 * An id nested in a recorded app's namespace ("org.v.inbox" under "org.v") is refused
 * unless both are signed by the same trusted key or the nested id was recorded first
 * (docs/security.md, "App identity"): the namespace is the parent's.
 * Returns a StateClaimResult (>= 0); -EEXIST when another app holds the id, then
 * *ret_recorded (if not NULL) is its claim (free with state_claim_clear); -ENOTUNIQ
 * when id is nested under another app's, then *ret_recorded is that app's claim with
 * its id; -EINVAL (bad id or claim), -ENOSPC (no uid left), -EPROTONOSUPPORT, -EIO,
 * -ENOMEM.
 */
int state_app_claim(State *s, const char *id, const StateClaim *claim, int64_t now_ms,
                    StateClaim *ret_recorded);

/*
 * Describes the app folder open at dirfd as a claim: its canonical path (of the fd,
 * from /proc/self/fd), device and inode, the BLAKE2b-256 of its manifest.json (NULL
 * if unreadable) and key_id (copied; NULL or "": unsigned). Returns 0 and *ret (free
 * with state_claim_clear), or -errno.
 */
int state_claim_of_folder(int dirfd, const char *key_id, StateClaim *ret);

/*
 * Logs why state_app_claim() refused claim (from app_dir) for id: the app recorded
 * (rec), what differs, and what the user can do (`cella forget ID`).
 */
void state_claim_log_conflict(const char *id, const char *app_dir, const StateClaim *claim,
                              const StateClaim *rec);

/*
 * Logs why state_app_claim() refused claim (from app_dir) for id with -ENOTUNIQ: the
 * app (parent, with its id) whose namespace holds id, and what the user can do.
 */
void state_claim_log_nested(const char *id, const char *app_dir, const StateClaim *claim,
                            const StateClaim *parent);

/* Frees the strings of c and zeroes it. */
void state_claim_clear(StateClaim *c);

/*
 * Forgets app id: its row (uid and claim) in state.db and apps/<id>/ with its /data,
 * removed without following symlinks. The app must not be running. Returns 1 if
 * anything was there, 0 if not; -EINVAL (bad id), -EIO, or -errno of the removal
 * (the row is kept then, so it can be tried again).
 */
int state_app_forget(State *s, const char *id);

/*
 * Clears app id's /data (`cella clear-data`, as Android's "clear storage"): removes
 * apps/<id>/data and its image data.img, not following symlinks nor entering another
 * file system (take the /data file system down first: storage_release()). The app
 * keeps its uid, claim, grants and installed files; its next start makes a new, empty
 * /data. The app must not be running. Returns 1 if anything was there, 0 if not,
 * -EINVAL (bad id), or -errno of the removal.
 */
int state_app_clear_data(State *s, const char *id);

/*
 * Creates apps/<id>/data (mode 0700, owned by uid:uid) and returns its path in
 * *ret (caller frees). An existing directory gets its owner corrected. Returns 0
 * or -errno.
 */
int state_app_data_dir(State *s, const char *id, uid_t uid, char **ret);

/*
 * Creates apps/<id>/data if missing (mode 0700; owned by root until
 * state_app_data_dir() gives it to the app) and returns its path in *ret (caller
 * frees): for a spawn that binds the directory before it has looked up the app's
 * uid. Returns 0, -EINVAL for a bad id, -ENOTDIR, or -errno.
 */
int state_app_data_path(State *s, const char *id, char **ret);

static inline void state_freep(State **s)
{
        state_free(*s);
}
