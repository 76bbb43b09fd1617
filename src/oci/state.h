/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * cella-oci's state under --root (docs/oci.md, "Commands"):
 *
 *   <root>/<id>/            mode 0700, one per container
 *       lock                flock(2)ed by every command on the container
 *       state.json          OciState, written atomically (a temporary file renamed)
 *       config.json         the bundle's config as create read it (hooks, policy)
 *       exec.fifo           mode 0622 FIFO: present while the container is "created"
 *   <root>/hostids/<uid>    O_EXCL files: the host ids in use, each naming its container
 *
 * A container's status (runtime-spec runtime.md "State") is computed, never stored:
 * exec.fifo present and init alive: created; init alive (a pidfd of the recorded pid,
 * whose start time in /proc/<pid>/stat still matches): running, or paused when its
 * cgroup is frozen; else stopped.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define OCI_STATE_ROOT_DEFAULT "/run/cella-oci"
/* A container id: [A-Za-z0-9][A-Za-z0-9_.-]*, at most this many bytes (runc allows
 * any length a file name takes; podman's ids are 64 hex digits). */
#define OCI_ID_MAX 128

/*
 * The host ids cella-oci gives its containers under policy cella: one each, host uid
 * and gid OCI_HOST_ID_BASE + n, 0 <= n < OCI_HOST_ID_COUNT, just below cella's own
 * apps' blocks (0x70000000 and up, docs/security.md) and far above the usual
 * /etc/subuid ranges (100000 + 65536 k), so no id of a person, a service, a rootless
 * podman user or a cella app is one of them.
 */
#define OCI_HOST_ID_BASE  0x6FFF0000u
#define OCI_HOST_ID_COUNT 65536u

typedef enum OciStatus {
        OCI_STATUS_CREATED,
        OCI_STATUS_RUNNING,
        OCI_STATUS_PAUSED,
        OCI_STATUS_STOPPED,
} OciStatus;

/* "created", "running", "paused", "stopped" (runtime.md). */
const char *oci_status_to_string(OciStatus s);

/* What state.json holds (the runtime-spec state plus what later commands need). */
typedef struct OciState {
        char *id;
        char *bundle;       /* absolute */
        char *rootfs;       /* absolute host path */
        char *created;      /* RFC 3339, UTC, nanoseconds */
        pid_t pid;          /* init's host pid */
        uint64_t pid_start; /* /proc/<pid>/stat field 22 (starttime, clock ticks since boot) */
        char *cgroup_path;  /* cgroup_name() of the container's cgroup, or NULL: none */
        bool systemd;       /* --systemd-cgroup: cgroup_path is the scope's */
        char *systemd_unit; /* the scope unit, with systemd */
        uid_t host_uid;     /* 0: none allocated (policy compat) */
        char *policy;       /* "cella" or "compat" */
        int ns_flags;       /* the CLONE_NEW* types the container has of its own or joined
                               (exec joins these through init); 0: cella's full set */
        char **annotation_keys, **annotation_values;
        size_t n_annotations;
} OciState;

void oci_state_done(OciState *s);

/* Whether id is a valid container id (see OCI_ID_MAX): no '/', no "." or "..", no
 * leading '.' or '-', nothing outside [A-Za-z0-9_.-]. */
bool oci_id_valid(const char *id);

/*
 * Opens (make: creates, mode 0700, with its missing parents) the state root dir.
 * Returns an O_DIRECTORY fd or -errno.
 */
int oci_root_open(const char *root, bool make);

/*
 * Opens <root>/<id> and takes its lock (flock LOCK_EX, waiting for another command on
 * the same container). make: creates it, -EEXIST if it exists. Returns 0 with
 * *ret_dirfd and *ret_lockfd, -ENOENT (no such container), -EEXIST, -EINVAL (a bad
 * id), or -errno.
 */
int oci_container_open(int rootfd, const char *id, bool make, int *ret_dirfd, int *ret_lockfd);

/* Removes <root>/<id> and everything in it (after delete). Returns 0 or -errno. */
int oci_container_remove(int rootfd, const char *id);

/* Writes s as dirfd/state.json atomically (a temporary file, fsync'd, renamed over).
 * Returns 0 or -errno. */
int oci_state_write(int dirfd, const OciState *s);

/* Reads dirfd/state.json into *s. Returns 0, -EBADMSG (not what oci_state_write()
 * wrote), -errno of the read. */
int oci_state_read(int dirfd, OciState *s);

/*
 * The container's status as described above; the freezer state is read from the
 * container's cgroup files (cgroup.freeze of the cgroup2 leaf, else freezer.state of
 * the v1 one), given as the directories (NULL: none). If ret_pidfd, a pidfd of a live
 * init goes there (-1 when stopped).
 */
OciStatus oci_state_status(int dirfd, const OciState *s, const char *unified_dir,
                           const char *freezer_dir, int *ret_pidfd);

/* The state JSON of runtime.md ("ociVersion", "id", "status", "pid", "bundle",
 * "annotations"; plus runc's "rootfs", "created", "owner"), pretty (for `state`) or
 * one line (a hook's stdin). NULL on ENOMEM. */
char *oci_state_to_json(const OciState *s, OciStatus status, bool pretty);

/* /proc/<pid>/stat's field 22 (starttime). Returns 0 and *ret, -ESRCH (no such
 * process), -EBADMSG. */
int oci_proc_start_time(pid_t pid, uint64_t *ret);

/*
 * A pidfd of pid if it is still the process that started at start (its start time
 * compared after the pidfd is open, so a reused pid is never taken for it). Returns
 * the fd, or -ESRCH (gone or another process), -errno.
 */
int oci_pidfd_open_checked(pid_t pid, uint64_t start);

/*
 * Takes a free host id for container id: the first n (from a hash of id, then
 * upwards) whose <root>/hostids/<OCI_HOST_ID_BASE + n> can be made with O_EXCL,
 * the file holding id. Returns 0 and *ret, -EUSERS (every id taken), -errno.
 */
int oci_host_id_take(int rootfd, const char *id, uid_t *ret);

/* Releases host id uid if it is id's (the file names id). Returns 0 or -errno. */
int oci_host_id_release(int rootfd, const char *id, uid_t uid);

/* Writes "<pid>" to path atomically (a temporary file beside it, renamed). */
int oci_pid_file_write(const char *path, pid_t pid);
