/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The state directory (DESIGN.md section 9): apps/<id>/data, and state.db, the
 * SQLite registry of per-app host uids (Android-style: one uid per app, kept for
 * the app's lifetime so its /data stays its own).
 */

#include <stdint.h>
#include <sys/types.h>

/*
 * The default host uid range for apps: 0x70000000 + 65536. systemd's
 * UIDS-GIDS.md lists 1879048192..2147352575 (0x70000000..) as unused by
 * systemd, after the range it hands to containers (524288..1879048191), so the
 * two cannot collide.
 */
#define STATE_UID_BASE_DEFAULT  0x70000000u
#define STATE_UID_COUNT_DEFAULT 65536u

typedef struct State State;

/*
 * Opens (creating if needed) the state directory at path: mode 0711 (others may
 * traverse, not list), apps/ beneath it, and state.db. uid_base/uid_count: the
 * range new apps get uids from (existing allocations are kept even if the range
 * later changes). A new state.db gets its schema here; an existing one is not read
 * until a call needs it, and that call checks the schema version. Returns 0 and *ret, -EINVAL
 * for a bad range, or -errno (mkdir/open) / -EIO (SQLite).
 */
int state_open(const char *path, uid_t uid_base, uint32_t uid_count, State **ret);
State *state_free(State *s);
const char *state_path(const State *s);

/*
 * Returns in *ret_uid the host uid of app id, allocating the lowest free one in the
 * range on first use (recorded in state.db in one IMMEDIATE transaction, so
 * concurrent cella processes never hand out the same uid). The gid equals the uid.
 * id must be a valid app id (manifest_id_is_valid), as it becomes a path and a
 * cgroup name. Returns 0, -EINVAL for a bad id, -ENOSPC when the range is full,
 * -EPROTONOSUPPORT if state.db was written by a newer cella, -EIO on a database
 * error.
 */
int state_app_uid(State *s, const char *id, uid_t *ret_uid);

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
