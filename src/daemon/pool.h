/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* cellad's warm pool (pool.c; docs/daemon.md, "The warm pool"). */

#include <jansson.h>

#include "daemon/daemon.h"

/* --warm's default: none, so that test suites and small hosts run no extra
 * processes. A host that starts apps often asks for it (--warm 2): since a warm
 * sandbox is born in a cgroup leaf of its own, a start through the pool migrates
 * no process and is the fastest start, and cloned by the zygote a warm sandbox
 * costs about 0.45 MiB Pss whatever cellad's size (docs/benchmarks.md, "Start
 * through cellad"). */
#define DAEMON_WARM_DEFAULT 0
/* --warm's bound. */
#define DAEMON_WARM_MAX 64

typedef struct DaemonPool DaemonPool;

/*
 * Forks the pool's zygote now (sandbox_zygote_new(): the small process that clones
 * the warm sandboxes), if target > 0: call it early in cellad's start, before it
 * loads any app, from the loop's thread; daemon_pool_start() takes it. Not fatal:
 * without a zygote cellad clones its warm sandboxes itself (a warning says so).
 */
void daemon_pool_prefork(unsigned target);

/*
 * Starts a pool of target warm sandboxes for d's supervisor (after its hooks,
 * before READY): the first is cloned on the loop's first turn. target 0: no pool
 * (*ret NULL, every start cold). Returns 0 or a negative errno (printed).
 */
int daemon_pool_start(Daemon *d, unsigned target, DaemonPool **ret);

/* Kills and reaps every warm sandbox and refills no more (a stop, a re-exec). */
void daemon_pool_empty(DaemonPool *p);

/* daemon_pool_empty(), then frees p once its timer is closed (the loop must run
 * again, or be closed). Takes NULL. */
void daemon_pool_free(DaemonPool *p);

/*
 * The pool's figures for org.cella.Pool (docs/api.md): target, ready (held),
 * prepared (of those, done preparing), the warm
 * children's pids, counts (taken, made, dropped, failed), and the memory of the
 * warm children and of cellad itself in KiB (Rss, Pss: /proc/PID/smaps_rollup), and
 * the zygote's pid (-1: none) and memory.
 * p may be NULL (no pool). Returns a new object.
 */
json_t *daemon_pool_json(DaemonPool *p);
