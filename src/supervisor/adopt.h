/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A kernel that keeps its apps across its own restart (cellad; docs/daemon.md
 * "Restart and adoption"): the supervisor's side of the keeper (src/keeper).
 *
 * Once supervisor_keeper_start() connected it to a keeper, every app it starts
 * (alone, or a packed group's host) is spawned with SandboxSpec.survive_parent, its
 * cgroup leaf named after the state directory (an owner tag, cgroup.h), and right
 * after its start a copy of
 * every fd its sandbox needs from the kernel is handed to the keeper (its init's
 * pidfd and ctl socket, its seccomp listener, the kernel's end of its broker
 * channel, the read ends of its stdout and stderr, a Lua app's stats file); at the
 * end of its run the keeper drops them. A packed group is handed over as one host
 * set and one member set per app (keeper.h, KeeperKind). The next kernel on the
 * same state directory takes them back with supervisor_adopt_all().
 */

#include <stddef.h>
#include <sys/types.h>

#include "supervisor/supervisor.h"

/* The environment variable that sets the keeper's grace in seconds (cellad reads it;
 * default KEEPER_GRACE_DEFAULT_S, src/keeper/keeper.h). */
#define SUPERVISOR_KEEPER_GRACE_ENV "CELLA_KEEPER_GRACE"

/*
 * Connects s to the keeper of its state directory, starting one (keeper_path, with
 * grace_s seconds of grace) if none listens, and names the cgroup leaves of apps
 * started from now on after the state directory (SupervisorOptions.owner_tag,
 * cellad's tag of it, else "d<dev>i<ino>" in hexadecimal: an owner tag,
 * cgroup_manager_set_owner()). Returns 0 or a negative errno
 * (printed; s then runs its apps as a kernel without a keeper: they die with it).
 */
int supervisor_keeper_start(Supervisor *s, const char *keeper_path, unsigned grace_s);

/* True while s hands its apps to a keeper. */
bool supervisor_keeper_attached(const Supervisor *s);

/*
 * Takes back every app the keeper holds (an earlier kernel's, on the same state
 * directory) and serves it as if s had started it: its manifest re-read from the
 * folder it was started from (which must still hold an app of that id), its
 * sandbox rebuilt from the fds (sandbox_adopt()), its output pumped into its log
 * again, its broker channel attached, its grants read. A packed group's host is
 * taken back with every app of it whose member set is held (its stats file and
 * output too), only if every record of the group agrees (docs/daemon.md,
 * "Adoption"), else the whole host is stopped. An app that cannot be
 * adopted (its fd set incomplete, its folder or manifest gone, its sandbox's fds
 * not what they should be) is killed (its init and its cgroup), dropped from the
 * keeper, and left for the restart policy (cellad's autostart starts an installed
 * app with one). Then every leaf under cella's root that is neither adopted nor
 * another live kernel's or another state directory's is killed and removed
 * (cgroup_sweep_owned()). Audits
 * "adopted" or "adopt-refused" lifecycle records and writes "adopted" status
 * records. Returns the number adopted (>= 0) with *ret_refused, or a negative errno
 * (printed) when the keeper could not be asked.
 */
int supervisor_adopt_all(Supervisor *s, size_t *ret_refused);
