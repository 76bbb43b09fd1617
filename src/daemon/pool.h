/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* cellad's warm pool (pool.c; docs/daemon.md, "The warm pool"). */

#include <jansson.h>

#include "daemon/daemon.h"

/* --warm's default: two warm sandboxes, so that the first starts after
 * cellad is ready, and a start right behind another, go through the pool (the
 * fastest start: no process migrated, docs/benchmarks.md "Start through
 * cellad"), while the refill of one runs. Cloned by the zygote, the two cost
 * about 5.4 MiB RSS and 0.9 MiB Pss together, whatever cellad's size, and the
 * zygote 2 MiB RSS, 0.3 MiB Pss (docs/benchmarks.md, org.cella.Pool's pool_kib);
 * --warm 0 keeps none (docs/daemon.md, "The warm pool"). */
#define DAEMON_WARM_DEFAULT 2
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
