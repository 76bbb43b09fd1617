/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the supervisor hands a cella-lua host and reads back from it
 * (docs/lua-api.md "Packed mode"): the host spec of a packed group (JSON, built
 * from the members' manifests without spawning anything, so it is tested in C),
 * and the stats file (src/lua/stats.h) every Lua host keeps its scheduler
 * counters in, which the supervisor maps read-only for `cella stats`.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lua/hostctl.h"
#include "lua/stats.h"
#include "policy/manifest.h"

/* Apps in one host: cella-lua's own bound on a spec (docs/lua-api.md "The host spec"). */
#define LUAHOST_APPS_MAX 65536u
/* The time slice a group's host runs with, ms (cella-lua's default; no manifest key). */
#define LUAHOST_SLICE_MS 10u
/* Cgroup memory share of a member that sets no limits.memory: the Lua default cap
 * (64 MiB) plus the 8 MiB launch_lua_memory_cap() keeps for the process, so that
 * launch_lua_memory_cap(LUAHOST_MEMBER_MEMORY) is cella-lua's own default. */
#define LUAHOST_MEMBER_MEMORY (72ull * 1024 * 1024)

/* One app of a packed group, with the fd numbers it gets inside the host. */
typedef struct LuaHostApp {
        const Manifest *manifest;
        char *const *extra_args; /* appended to manifest->args; may be NULL */
        int channel_fd;          /* its broker channel in the host, or -1 */
        int log_fd;              /* where its print/cella.log go in the host, or -1 */
        int slot;                /* its slot in a host of n_slots (luahost_spec_build()) */
} LuaHostApp;

/*
 * The scheduler of a group: the one its members set ("scheduler"), fair if none
 * does. ms: the members' manifests, n of them (n >= 1). Returns 0 and *ret, or
 * -EINVAL when two members set different schedulers, with *ret_a and *ret_b the
 * indices of the first two that disagree (in ms order).
 */
int luahost_scheduler(const Manifest *const *ms, size_t n, ManifestScheduler *ret, size_t *ret_a,
                      size_t *ret_b);

/*
 * The restart policy of a group's host: the strictest of its members' in the sense
 * of keeping the group up, always > on-failure > no (docs/manifest.md).
 */
ManifestRestart luahost_restart(const Manifest *const *ms, size_t n);

/*
 * The cgroup memory limit of a group's host, bytes: the sum of each member's
 * limits.memory, or LUAHOST_MEMBER_MEMORY for a member without one (saturating
 * at UINT64_MAX).
 */
uint64_t luahost_memory(const Manifest *const *ms, size_t n);

/*
 * Builds the host spec of docs/lua-api.md "The host spec" as compact JSON.
 * apps: n members (1..LUAHOST_APPS_MAX), in the order of the stats file's records
 * when n_slots is 0; else the host has n_slots slots (n..LUAHOST_APPS_MAX: "slots")
 * and each app's slot (< n_slots, each its own) says its record ("slot").
 * Each app gets entry "/apps/<id>/<entry>", data "/data/<id>", its args, priority,
 * and memory = launch_lua_memory_cap() of its limits.memory (or of
 * LUAHOST_MEMBER_MEMORY). stats_fd: the stats file's fd in the host, or -1;
 * control_fd: the host end of its control channel (src/lua/hostctl.h), or -1.
 * Returns 0 and *ret (a NUL-terminated string; free()), -EINVAL (n out of range,
 * a NULL manifest), or -ENOMEM.
 */
int luahost_spec_build(ManifestScheduler scheduler, const LuaHostApp *apps, size_t n,
                       size_t n_slots, int stats_fd, int control_fd, char **ret);

/*
 * Builds the JOIN message of src/lua/hostctl.h for app a (its channel_fd and log_fd
 * say only whether it has a log: >= 0; the fds themselves go in SCM_RIGHTS, the
 * channel first): header then the same JSON object as its entry of the spec
 * without fds. index: its slot; run: this run's number (>= 1). Returns 0 and *ret
 * (free()) of *ret_len bytes (<= CLUA_CTL_MSG_MAX), -EINVAL (a NULL manifest, run
 * 0), -EMSGSIZE (its arguments make it longer than a message may be), or -ENOMEM.
 */
int luahost_join_build(const LuaHostApp *a, uint32_t index, uint32_t run, void **ret,
                       size_t *ret_len);

/* The STOP message of src/lua/hostctl.h for slot index's run run: *ret. */
void luahost_stop_build(uint32_t index, uint32_t run, CLuaCtlHeader *ret);

/* Room for any PRIORITY message of src/lua/hostctl.h. */
#define LUAHOST_PRIORITY_MSG_MAX (sizeof(CLuaCtlHeader) + CLUA_CTL_PRIORITY_MAX)

/*
 * The PRIORITY message of src/lua/hostctl.h for slot index's run run: CPU class
 * cpu_class (CLUA_CPU_CLASS_FOREGROUND..CACHED, src/lua/stats.h) and priority
 * (-20..19) into buf (size bytes, at least LUAHOST_PRIORITY_MSG_MAX). Returns
 * its length, -EINVAL (a class or priority out of range), or -ENOBUFS.
 */
int luahost_priority_build(uint32_t index, uint32_t run, uint32_t cpu_class, int priority,
                           void *buf, size_t size);

/* A stats file: the memfd the host writes and our read-only mapping of it. */
typedef struct LuaStats {
        int fd;          /* memfd (sealed against shrinking and growing) */
        const void *map; /* PROT_READ, MAP_SHARED */
        size_t size;     /* clua_stats_size(n_apps) */
        uint32_t n_apps; /* records we sized it for */
} LuaStats;

/*
 * Creates a zeroed stats file for n_apps (1..LUAHOST_APPS_MAX) records: a memfd of
 * clua_stats_size(n_apps) bytes, sealed (F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_SEAL)
 * so the host cannot change its size under our mapping, and mapped read-only.
 * Returns 0 and *ret (free with luastats_free()), -EINVAL, or -errno.
 */
int luastats_new(uint32_t n_apps, LuaStats **ret);

/* Unmaps, closes, frees. Takes NULL; returns NULL. */
LuaStats *luastats_free(LuaStats *s);

/*
 * Copies the host record (relaxed atomic loads, as the host stores). Returns 0,
 * -EAGAIN while the host has not started (magic 0), or -EPROTO for a wrong magic,
 * an unknown version or an n_apps other than ours.
 */
int luastats_host(const LuaStats *s, CLuaStatsHost *ret);

/*
 * Copies app record i (< s->n_apps: our count, never the file's), its run first
 * (an acquire load: what follows is of that run or later). Returns 0, -ERANGE, or
 * luastats_host()'s errors.
 */
int luastats_app(const LuaStats *s, uint32_t i, CLuaStatsApp *ret);

/*
 * The stats as JSON for the control socket's "stats" (docs/cli.md):
 * {"scheduler", "slice_ms", "slices", "preemptions", "yields", "switches",
 *  "cpu_ms", "started", "apps": [{"id", "state", "priority", "weight", "slices",
 *  "preemptions", "yields", "callbacks", "cpu_ms", "vruntime_ms", "memory_kib",
 *  "memory_peak_kib", "fault"}]}; ids: s->n_apps app ids, in record order, NULL for
 * a record to leave out (a slot with no app running).
 * only: an app id to keep alone in "apps", or NULL for all. Returns a new
 * reference, or NULL (the host has not started, a bad file, or no memory).
 */
json_t *luastats_json(const LuaStats *s, const char *const *ids, const char *only);

/* "starting", "ready", "running", "waiting", "exited", "failed", or "unknown". */
const char *luastats_state_to_string(uint32_t state);

/* The words for a cella-lua exit code or fault (1, 3, 4), or NULL for another code:
 * "uncaught Lua error", "memory limit of the Lua state exceeded", "CPU budget
 * exceeded" (docs/lua-api.md "Runtime"). */
const char *luastats_fault_reason(int code);
