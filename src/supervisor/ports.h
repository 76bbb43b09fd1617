/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The kernel's port forwards (docs/network.md, "Port forwarding"): each running app's
 * forwards (net/forward.h), its manifest's "ports" opened at each start and those
 * added at runtime (org.cella.PortAdd, `cella port`), every one under the app's
 * net.listen:<host port> right, checked at open and again whenever the app's grants
 * change. They all end when the app's run ends.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/forward.h"

typedef struct Supervisor Supervisor;
typedef struct Instance Instance;

/*
 * Adds a runtime forward of spec (a NetForwardSpec) to the running app app_id.
 * Returns 0, or -errno with why (why_size bytes, one English sentence): -ESRCH (no
 * such app), -ENOTCONN (it does not run), -EOPNOTSUPP (a packed app: its group
 * shares one namespace), -EACCES (net.listen:<host> is not granted), -EEXIST,
 * -EADDRINUSE, -EADDRNOTAVAIL or another error of net_forward_add().
 */
int supervisor_port_add(Supervisor *s, const char *app_id, const NetForwardSpec *spec, char *why,
                        size_t why_size);

/* Removes the forward of host port and protocol of app app_id. Returns 0, -ESRCH (no
 * such app), -ENOTCONN (it does not run) or -ENOENT (no such forward). */
int supervisor_port_remove(Supervisor *s, const char *app_id, uint16_t host, bool udp);

/* The forwards of app app_id (net_forward_list(); [] when it does not run), or NULL
 * with *ret_errno: -ESRCH (no such app), -ENOMEM. */
json_t *supervisor_port_list(Supervisor *s, const char *app_id, int *ret_errno);
