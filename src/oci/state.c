/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cella-oci's state directory (state.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/strv.h"
#include "oci/state.h"

#define STATE_FILE     "state.json"
#define STATE_MAX      (1024u * 1024u)
#define HOST_IDS_DIR   "hostids"
#define OCI_SPEC_STATE "1.2.0"

const char *oci_status_to_string(OciStatus s)
{
        static const char *const names[] = {
                [OCI_STATUS_CREATED] = "created",
                [OCI_STATUS_RUNNING] = "running",
                [OCI_STATUS_PAUSED] = "paused",
                [OCI_STATUS_STOPPED] = "stopped",
        };

        return s <= OCI_STATUS_STOPPED ? names[s] : "stopped";
}

void oci_state_done(OciState *s)
{
        free(s->id);
        free(s->bundle);
        free(s->rootfs);
        free(s->created);
        free(s->cgroup_path);
        free(s->systemd_unit);
        free(s->policy);
        strv_free(s->annotation_keys);
        strv_free(s->annotation_values);
        *s = (OciState){};
}

bool oci_id_valid(const char *id)
{
        size_t n = id ? strlen(id) : 0;

        if (n == 0 || n > OCI_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = id[i];
                bool alnum =
                        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

                if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
                        return false;
        }
        return true;
}

int oci_root_open(const char *root, bool make)
{
        int fd;

        if (!root || root[0] != '/')
                return -EINVAL;
        if (make) {
                int r = mkdir_p(root, 0700);

                if (r < 0)
                        return r;
        }
        fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

int oci_container_open(int rootfd, const char *id, bool make, int *ret_dirfd, int *ret_lockfd)
{
        _cleanup_close_ int dfd = -EBADF, lfd = -EBADF;

        if (!oci_id_valid(id))
                return -EINVAL;
        if (make && mkdirat(rootfd, id, 0700) < 0)
                return negative_errno();
        dfd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return errno == ELOOP || errno == ENOTDIR ? -ENOENT : negative_errno();
        lfd = openat(dfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (lfd < 0)
                return negative_errno();
        if (RETRY_EINTR(flock(lfd, LOCK_EX)) < 0)
                return negative_errno();
        /* A delete may have removed the directory while we waited for its lock. */
        if (!make && faccessat(dfd, STATE_FILE, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
            faccessat(rootfd, id, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                return -ENOENT;
        *ret_dirfd = TAKE_FD(dfd);
        *ret_lockfd = TAKE_FD(lfd);
        return 0;
}

static int rm_rf_at(int parent, const char *name, unsigned depth)
{
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (depth > 8)
                return -ELOOP;
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOTDIR || errno == ELOOP)
                        return unlinkat(parent, name, 0) < 0 ? negative_errno() : 0;
                return errno == ENOENT ? 0 : negative_errno();
        }
        d = fdopendir(fd);
        if (!d)
                return negative_errno();
        fd = -EBADF; /* owned by d */
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (de->d_type == DT_DIR)
                        r = rm_rf_at(dirfd(d), de->d_name, depth + 1);
                else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
                        r = negative_errno();
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r < 0)
                return r;
        return unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? negative_errno() : 0;
}

int oci_container_remove(int rootfd, const char *id)
{
        if (!oci_id_valid(id))
                return -EINVAL;
        return rm_rf_at(rootfd, id, 0);
}

static int json_set_str(json_t *o, const char *k, const char *v)
{
        return json_object_set_new(o, k, v ? json_string(v) : json_null());
}

static json_t *state_to_json_full(const OciState *s)
{
        json_t *o = json_object(), *a = json_object();

        if (!o || !a) {
                json_decref(o);
                json_decref(a);
                return NULL;
        }
        for (size_t i = 0; i < s->n_annotations; i++)
                json_object_set_new(a, s->annotation_keys[i], json_string(s->annotation_values[i]));
        if (json_set_str(o, "id", s->id) < 0 || json_set_str(o, "bundle", s->bundle) < 0 ||
            json_set_str(o, "rootfs", s->rootfs) < 0 ||
            json_set_str(o, "created", s->created) < 0 ||
            json_object_set_new(o, "pid", json_integer(s->pid)) < 0 ||
            json_object_set_new(o, "pidStartTime", json_integer((json_int_t)s->pid_start)) < 0 ||
            json_set_str(o, "cgroupPath", s->cgroup_path) < 0 ||
            json_object_set_new(o, "systemd", json_boolean(s->systemd)) < 0 ||
            json_set_str(o, "systemdUnit", s->systemd_unit) < 0 ||
            json_object_set_new(o, "hostUid", json_integer(s->host_uid)) < 0 ||
            json_set_str(o, "policy", s->policy) < 0 ||
            json_object_set_new(o, "nsFlags", json_integer(s->ns_flags)) < 0 ||
            json_object_set_new(o, "annotations", a) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

int oci_state_write(int dirfd, const OciState *s)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        json_t *o = state_to_json_full(s);
        char tmp[] = ".state.json.tmp";
        int r;

        if (!o)
                return -ENOMEM;
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        (void)unlinkat(dirfd, tmp, 0);
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        r = loop_write(fd, text, strlen(text));
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && renameat(dirfd, tmp, dirfd, STATE_FILE) < 0)
                r = negative_errno();
        if (r < 0)
                (void)unlinkat(dirfd, tmp, 0);
        return r;
}

static int get_str(json_t *o, const char *k, bool required, char **ret)
{
        json_t *v = json_object_get(o, k);

        if (!v || json_is_null(v))
                return required ? -EBADMSG : 0;
        if (!json_is_string(v))
                return -EBADMSG;
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

int oci_state_read(int dirfd, OciState *s)
{
        _cleanup_free_ char *text = NULL;
        json_t *o, *v, *a;
        const char *k;
        size_t size;
        int r;

        *s = (OciState){};
        r = read_file_at(dirfd, STATE_FILE, STATE_MAX, &text, &size);
        if (r < 0)
                return r;
        o = json_loadb(text, size, 0, NULL);
        if (!json_is_object(o)) {
                json_decref(o);
                return -EBADMSG;
        }
        if ((r = get_str(o, "id", true, &s->id)) < 0 ||
            (r = get_str(o, "bundle", true, &s->bundle)) < 0 ||
            (r = get_str(o, "rootfs", false, &s->rootfs)) < 0 ||
            (r = get_str(o, "created", false, &s->created)) < 0 ||
            (r = get_str(o, "cgroupPath", false, &s->cgroup_path)) < 0 ||
            (r = get_str(o, "systemdUnit", false, &s->systemd_unit)) < 0 ||
            (r = get_str(o, "policy", false, &s->policy)) < 0)
                goto fail;
        r = -EBADMSG;
        v = json_object_get(o, "pid");
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT_MAX)
                goto fail;
        s->pid = (pid_t)json_integer_value(v);
        v = json_object_get(o, "pidStartTime");
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                goto fail;
        s->pid_start = (uint64_t)json_integer_value(v);
        v = json_object_get(o, "hostUid");
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > (json_int_t)UINT32_MAX)
                goto fail;
        s->host_uid = (uid_t)json_integer_value(v);
        v = json_object_get(o, "nsFlags");
        s->ns_flags = json_is_integer(v) ? (int)json_integer_value(v) : 0;
        s->systemd = json_is_true(json_object_get(o, "systemd"));
        a = json_object_get(o, "annotations");
        json_object_foreach(a, k, v)
        {
                if (!json_is_string(v))
                        goto fail;
                if (strv_extend(&s->annotation_keys, k) < 0 ||
                    strv_extend(&s->annotation_values, json_string_value(v)) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                s->n_annotations++;
        }
        json_decref(o);
        return 0;
fail:
        json_decref(o);
        oci_state_done(s);
        return r;
}

int oci_proc_start_time(pid_t pid, uint64_t *ret)
{
        char path[64], buf[1024], *p;
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : negative_errno();
        n = read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return n < 0 ? -ESRCH : -EBADMSG;
        buf[n] = 0;
        /* comm (field 2) may hold spaces and ')': fields 3 on follow the last ')'. */
        p = strrchr(buf, ')');
        if (!p)
                return -EBADMSG;
        p++;
        for (int field = 3; field < 22; field++) {
                p = strchr(p + 1, ' ');
                if (!p)
                        return -EBADMSG;
        }
        if (sscanf(p, " %" SCNu64, ret) != 1)
                return -EBADMSG;
        return 0;
}

int oci_pidfd_open_checked(pid_t pid, uint64_t start)
{
        _cleanup_close_ int fd = -EBADF;
        uint64_t now;
        char path[64];

        if (pid <= 0)
                return -ESRCH;
        fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0)
                return errno == ESRCH ? -ESRCH : negative_errno();
        /* The pidfd holds the process it was opened on: if the start time read now
         * matches, that process is the init, and stays named by the fd. */
        if (oci_proc_start_time(pid, &now) < 0 || now != start)
                return -ESRCH;
        /* A zombie (its parent has not reaped it yet) runs no more. */
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        {
                _cleanup_free_ char *text = NULL;
                size_t size;
                char *p;

                if (read_file_at(AT_FDCWD, path, 4096, &text, &size) < 0)
                        return -ESRCH;
                p = strrchr(text, ')');
                if (!p || (p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')))
                        return -ESRCH;
        }
        return TAKE_FD(fd);
}

static bool cgroup_frozen(const char *unified_dir, const char *freezer_dir)
{
        char path[PATH_MAX];
        _cleanup_free_ char *v = NULL;
        size_t n;

        if (unified_dir) {
                snprintf(path, sizeof path, "%s/cgroup.freeze", unified_dir);
                if (read_file_at(AT_FDCWD, path, 64, &v, &n) >= 0)
                        return v[0] == '1';
        }
        if (freezer_dir) {
                snprintf(path, sizeof path, "%s/freezer.state", freezer_dir);
                if (read_file_at(AT_FDCWD, path, 64, &v, &n) >= 0)
                        return strncmp(v, "FROZEN", 6) == 0 || strncmp(v, "FREEZING", 8) == 0;
        }
        return false;
}

OciStatus oci_state_status(int dirfd, const OciState *s, const char *unified_dir,
                           const char *freezer_dir, int *ret_pidfd)
{
        int fd = oci_pidfd_open_checked(s->pid, s->pid_start);
        OciStatus st;

        if (ret_pidfd)
                *ret_pidfd = -1;
        if (fd < 0)
                return OCI_STATUS_STOPPED;
        if (faccessat(dirfd, "exec.fifo", F_OK, AT_SYMLINK_NOFOLLOW) >= 0)
                st = OCI_STATUS_CREATED;
        else if (cgroup_frozen(unified_dir, freezer_dir))
                st = OCI_STATUS_PAUSED;
        else
                st = OCI_STATUS_RUNNING;
        if (ret_pidfd)
                *ret_pidfd = fd;
        else
                safe_close(fd);
        return st;
}

char *oci_state_to_json(const OciState *s, OciStatus status, bool pretty)
{
        json_t *o = json_object(), *a = json_object();
        char *text = NULL;

        if (!o || !a)
                goto out;
        for (size_t i = 0; i < s->n_annotations; i++)
                json_object_set_new(a, s->annotation_keys[i], json_string(s->annotation_values[i]));
        if (json_set_str(o, "ociVersion", OCI_SPEC_STATE) < 0 || json_set_str(o, "id", s->id) < 0 ||
            json_set_str(o, "status", oci_status_to_string(status)) < 0 ||
            json_object_set_new(o, "pid", json_integer(status == OCI_STATUS_STOPPED ? 0 : s->pid)) <
                    0 ||
            json_set_str(o, "bundle", s->bundle) < 0 || json_set_str(o, "rootfs", s->rootfs) < 0 ||
            json_set_str(o, "created", s->created) < 0 || json_set_str(o, "owner", "") < 0)
                goto out;
        if (json_object_set_new(o, "annotations", a) < 0) {
                a = NULL;
                goto out;
        }
        a = NULL;
        text = json_dumps(o, pretty ? JSON_INDENT(2) | JSON_PRESERVE_ORDER
                                    : JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
        json_decref(a);
        json_decref(o);
        return text;
}

/* FNV-1a of id: where a container's search for a host id starts, so that ids spread. */
static uint32_t id_hash(const char *id)
{
        uint32_t h = 2166136261u;

        for (const char *p = id; *p; p++)
                h = (h ^ (unsigned char)*p) * 16777619u;
        return h;
}

int oci_host_id_take(int rootfd, const char *id, uid_t *ret)
{
        _cleanup_close_ int dfd = -EBADF;
        uint32_t start = id_hash(id) % OCI_HOST_ID_COUNT;

        if (mkdirat(rootfd, HOST_IDS_DIR, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        dfd = openat(rootfd, HOST_IDS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        for (uint32_t i = 0; i < OCI_HOST_ID_COUNT; i++) {
                uid_t uid = OCI_HOST_ID_BASE + (start + i) % OCI_HOST_ID_COUNT;
                char name[16];
                _cleanup_close_ int fd = -EBADF;
                int r;

                snprintf(name, sizeof name, "%u", (unsigned)uid);
                fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0) {
                        if (errno == EEXIST)
                                continue;
                        return negative_errno();
                }
                r = loop_write(fd, id, strlen(id));
                if (r < 0) {
                        (void)unlinkat(dfd, name, 0);
                        return r;
                }
                *ret = uid;
                return 0;
        }
        return -EUSERS;
}

int oci_host_id_release(int rootfd, const char *id, uid_t uid)
{
        _cleanup_free_ char *owner = NULL;
        char path[64];
        size_t n;
        int r;

        if (uid < OCI_HOST_ID_BASE || uid - OCI_HOST_ID_BASE >= OCI_HOST_ID_COUNT)
                return -EINVAL;
        snprintf(path, sizeof path, HOST_IDS_DIR "/%u", (unsigned)uid);
        r = read_file_at(rootfd, path, OCI_ID_MAX + 1, &owner, &n);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (n != strlen(id) || memcmp(owner, id, n) != 0)
                return -EPERM;
        return unlinkat(rootfd, path, 0) < 0 ? negative_errno() : 0;
}

int oci_pid_file_write(const char *path, pid_t pid)
{
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        char buf[16];
        int r;

        if (asprintf(&tmp, "%s.cella-oci-tmp", path) < 0)
                return -ENOMEM;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return negative_errno();
        snprintf(buf, sizeof buf, "%d", (int)pid);
        r = loop_write(fd, buf, strlen(buf));
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0)
                (void)unlink(tmp);
        return r;
}
