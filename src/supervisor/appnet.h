/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An app's full network while it runs (net.internet; docs/network.md, "Full network
 * (net.internet)"): the kernel's side of src/net/fullnet.h. The app's start makes it
 * (instance.c, while the sandbox's child waits to fork the app), its run's end
 * kills pasta without waiting, a revoke of net.internet cuts it at once, and a
 * pasta that dies on its own is noticed, said and audited. pasta is reaped from
 * the loop (a poll on its pidfd), after the app's run has ended if need be.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "policy/manifest.h"
#include "supervisor/error.h"

typedef struct Supervisor Supervisor;
typedef struct Instance Instance;
typedef struct AppNet AppNet;

/* Whether m requests net.internet (its start then waits for appnet_start()). */
bool appnet_wanted(const Manifest *m);

/*
 * When inst holds net.internet (grants_check(): a one-time grant is used up by the
 * start, and the network it opened lasts the run), gives the namespace of sandbox init pid (in our
 * pid namespace) its interface and rules, with an exception for every permanent
 * net.connect:ADDRESS:PORT right it holds whose ADDRESS is a literal address.
 * Holding no grant, it says so (info) and leaves the app its loopback. Returns 0,
 * or a negative errno with *err filled, after a message naming the app and
 * pasta's reason: the app does not start (a granted network it did not get would
 * be a silent gap).
 */
int appnet_start(Instance *inst, pid_t pid, SupervisorError *err);

/* The run of inst ended (or is given up): pasta is SIGKILLed, not waited for (it is
 * reaped from the loop later). No-op without a network. */
void appnet_stop(Instance *inst);

/*
 * Grants changed for app_id (NULL: any app): every running app whose network
 * outlived its net.internet grant loses it at once (drop-all rules in its
 * namespace, then pasta SIGKILLed), with a message and an audit record; one that
 * still holds it but gained or lost an exact net.connect:ADDRESS:PORT right gets
 * its rules loaded again with the exceptions it holds now (a failure cuts the
 * network). Returns the number of networks cut.
 */
int appnet_recheck(Supervisor *s, const char *app_id);

/* Before the kernel re-executes itself (cellad's SIGHUP): every app's network is cut
 * (drop-all rules, pasta killed and reaped, said and audited), since the new image
 * would not know its pasta, and so could neither revoke nor reap it. The apps run
 * on, with their loopback only. */
void appnet_drop_all(Supervisor *s);

/* At the kernel's end, after its loop is closed: kills every pasta left, without
 * waiting for its exit (fullnet_abandon()), and frees them. */
void appnet_free_all(Supervisor *s);
