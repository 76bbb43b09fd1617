/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * From a parsed config.json to a SandboxSpec (spec.h), under the policy its
 * io.cella.policy annotation names (docs/oci.md, "Policy"). What the policy changes or
 * refuses to honour is said once, here: a refusal is an error naming the JSON path
 * and the reason; a change is a line in OciSpecBuild.notes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/strv.h"
#include "oci/spec.h"
#include "sandbox/cgroup.h"

/* The kernel's cpu.cfs_period_us bounds (kernel/sched/core.c: 1 ms to 1 s) and the
 * smallest quota it takes (1 ms). */
#define CPU_PERIOD_MIN_US 1000u
#define CPU_PERIOD_MAX_US 1000000u
#define CPU_QUOTA_MIN_US  1000u
/* cgroup v1 cpu.shares bounds (MIN_SHARES, MAX_SHARES in kernel/sched/sched.h). */
#define CPU_SHARES_MIN 2u
#define CPU_SHARES_MAX 262144u
/* The search path when process.env has no PATH (runc's and Go's default for root). */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

int oci_policy_from_config(const OciConfig *c, OciPolicy *ret, char *err, size_t errlen)
{
        const char *v = oci_config_annotation(c, OCI_POLICY_ANNOTATION);

        if (!v || strcmp(v, "cella") == 0) {
                *ret = OCI_POLICY_CELLA;
                return 0;
        }
        if (strcmp(v, "compat") == 0) {
                *ret = OCI_POLICY_COMPAT;
                return 0;
        }
        if (err && errlen) {
                char msg[256];

                snprintf(msg, sizeof msg,
                         "config.json: annotations[\"" OCI_POLICY_ANNOTATION
                         "\"]: unknown policy \"%.64s\" (cella, compat)",
                         v);
                oci_escape(msg, err, errlen);
        }
        return -EINVAL;
}

const char *oci_policy_to_string(OciPolicy p)
{
        return p == OCI_POLICY_COMPAT ? "compat" : "cella";
}

typedef struct Builder {
        const OciConfig *c;
        const char *bundle;
        OciSpecBuild *b;
        char *err;
        size_t errlen;
} Builder;

/* Messages and notes are escaped (oci_escape): they quote the config's strings. */
_printf_(4, 5) static int fail(Builder *x, int r, const char *path, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        int n;

        if (!x->err || x->errlen == 0)
                return r;
        n = snprintf(msg, sizeof msg, "config.json: %s: ", path);
        if (n < 0 || (size_t)n >= sizeof msg)
                n = 0;
        va_start(ap, fmt);
        vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
        va_end(ap);
        oci_escape(msg, x->err, x->errlen);
        return r;
}

static int oom(Builder *x)
{
        if (x->err && x->errlen)
                snprintf(x->err, x->errlen, "out of memory");
        return -ENOMEM;
}

_printf_(2, 3) static int note(Builder *x, const char *fmt, ...)
{
        char raw[1024], line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        if (strv_extend(&x->b->notes, oci_escape(raw, line, sizeof line)) < 0)
                return oom(x);
        return 0;
}

/* A copy of s owned by the build (NULL stays NULL). */
/* The host id that maps (n lines) give to inside, or 0 when none does. */
static uint32_t map_to_host(const SandboxIdMap *map, size_t n, uint32_t inside)
{
        for (size_t i = 0; i < n; i++)
                if (inside >= map[i].inside && inside - map[i].inside < map[i].count)
                        return map[i].host + (inside - map[i].inside);
        return 0;
}

static int own(Builder *x, const char *s, const char **ret)
{
        size_t n;

        if (!s) {
                *ret = NULL;
                return 0;
        }
        if (strv_extend(&x->b->strings, s) < 0)
                return oom(x);
        n = strv_length(x->b->strings);
        *ret = x->b->strings[n - 1];
        return 0;
}

/* The names of the capabilities in mask, comma-separated, into buf. */
static void cap_list(uint64_t mask, char *buf, size_t size)
{
        size_t o = 0;

        buf[0] = 0;
        for (int c = 0; c < 64 && o < size; c++) {
                const char *name;
                int n;

                if (!(mask & (UINT64_C(1) << c)))
                        continue;
                name = oci_capability_name(c);
                n = name ? snprintf(buf + o, size - o, "%s%s", o ? ", " : "", name)
                         : snprintf(buf + o, size - o, "%scapability %d", o ? ", " : "", c);
                if (n < 0)
                        break;
                o += (size_t)n;
        }
}

/* ---- root and mounts ------------------------------------------------------------------- */

static int build_rootfs_path(Builder *x)
{
        const OciConfig *c = x->c;
        _cleanup_free_ char *joined = NULL;
        struct stat st;
        int r;

        if (!c->root_path)
                return fail(x, -EINVAL, "root", "missing (a container needs a root file system)");
        if (c->root_path[0] == '/')
                joined = strdup(c->root_path);
        else if (asprintf(&joined, "%s/%s", x->bundle, c->root_path) < 0)
                joined = NULL;
        if (!joined)
                return oom(x);
        /* A root that is a symlink is followed (runc does the same): the engine made it. */
        x->b->rootfs_path = realpath(joined, NULL);
        if (!x->b->rootfs_path) {
                r = negative_errno();
                return fail(x,
                            r == -ENOMEM   ? r
                            : r == -ENOENT ? -ENOENT
                                           : -EINVAL,
                            "root.path", "%s: %s", joined, strerror(-r));
        }
        if (stat(x->b->rootfs_path, &st) < 0) {
                r = negative_errno();
                return fail(x, -EINVAL, "root.path", "%s: %s", x->b->rootfs_path, strerror(-r));
        }
        if (!S_ISDIR(st.st_mode))
                return fail(x, -EINVAL, "root.path", "%s is not a directory", x->b->rootfs_path);
        return 0;
}

typedef struct MountFlag {
        const char *name;
        bool clear;
        unsigned long flag;
} MountFlag;

/* mount(8)'s file system independent options, as runc and crun read them. */
static const MountFlag mount_flags[] = {
        {"defaults", false, 0},
        {"ro", false, MS_RDONLY},
        {"rw", true, MS_RDONLY},
        {"nosuid", false, MS_NOSUID},
        {"suid", true, MS_NOSUID},
        {"nodev", false, MS_NODEV},
        {"dev", true, MS_NODEV},
        {"noexec", false, MS_NOEXEC},
        {"exec", true, MS_NOEXEC},
        {"sync", false, MS_SYNCHRONOUS},
        {"async", true, MS_SYNCHRONOUS},
        {"dirsync", false, MS_DIRSYNC},
        {"mand", false, MS_MANDLOCK},
        {"nomand", true, MS_MANDLOCK},
        {"noatime", false, MS_NOATIME},
        {"atime", true, MS_NOATIME},
        {"nodiratime", false, MS_NODIRATIME},
        {"diratime", true, MS_NODIRATIME},
        {"relatime", false, MS_RELATIME},
        {"norelatime", true, MS_RELATIME},
        {"strictatime", false, MS_STRICTATIME},
        {"nostrictatime", true, MS_STRICTATIME},
        {"lazytime", false, MS_LAZYTIME},
        {"nolazytime", true, MS_LAZYTIME},
        {"iversion", false, MS_I_VERSION},
        {"noiversion", true, MS_I_VERSION},
        {"silent", false, MS_SILENT},
        {"loud", true, MS_SILENT},
        {"nosymfollow", false, MS_NOSYMFOLLOW},
        {"symfollow", true, MS_NOSYMFOLLOW},
        {"bind", false, MS_BIND},
        {"rbind", false, MS_BIND | MS_REC},
};

static const struct {
        const char *name;
        unsigned long flags;
} propagations[] = {
        {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
        {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
        {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
        {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

/* Options cella refuses: it cannot honour them, and leaving them out would weaken or
 * change the mount. */
static const struct {
        const char *name;
        const char *why;
} refused_options[] = {
        {"remount", "a remount is not a mount a container config can ask for"},
        {"idmap", "id-mapped mounts are not supported"},
        {"ridmap", "id-mapped mounts are not supported"},
        /* runc applies these with mount_setattr(AT_RECURSIVE); the sandbox library's
         * flags apply to the top mount only, so a submount would stay writable. */
        {"rro", "recursive mount attributes are not supported"},
        {"rrw", "recursive mount attributes are not supported"},
        {"rnosuid", "recursive mount attributes are not supported"},
        {"rsuid", "recursive mount attributes are not supported"},
        {"rnodev", "recursive mount attributes are not supported"},
        {"rdev", "recursive mount attributes are not supported"},
        {"rnoexec", "recursive mount attributes are not supported"},
        {"rexec", "recursive mount attributes are not supported"},
        {"rnoatime", "recursive mount attributes are not supported"},
        {"ratime", "recursive mount attributes are not supported"},
        {"rnodiratime", "recursive mount attributes are not supported"},
        {"rdiratime", "recursive mount attributes are not supported"},
        {"rrelatime", "recursive mount attributes are not supported"},
        {"rnorelatime", "recursive mount attributes are not supported"},
        {"rstrictatime", "recursive mount attributes are not supported"},
        {"rnostrictatime", "recursive mount attributes are not supported"},
        {"rnosymfollow", "recursive mount attributes are not supported"},
        {"rsymfollow", "recursive mount attributes are not supported"},
};

/* Options runtimes take and cella leaves out, with a note. */
static const struct {
        const char *name;
        const char *why;
} ignored_options[] = {
        /* crun's: copy the image's directory into a new tmpfs. */
        {"tmpcopyup", "not supported, the tmpfs starts empty"},
        {"notmpcopyup", "nothing to do"},
        /* SELinux relabelling and podman's chown, done by the engine before create. */
        {"z", "relabelling is the engine's"},
        {"Z", "relabelling is the engine's"},
        {"U", "chown is the engine's"},
        {"copy", "not supported"},
        {"nocopy", "nothing to do"},
};

static int propagation_from_string(const char *s, unsigned long *ret)
{
        for (size_t k = 0; k < ELEMENTSOF(propagations); k++)
                if (strcmp(s, propagations[k].name) == 0) {
                        *ret = propagations[k].flags;
                        return 0;
                }
        return -EINVAL;
}

static int build_mount(Builder *x, size_t i, SandboxMount *m)
{
        const OciMount *om = &x->c->mounts[i];
        _cleanup_free_ char *data = NULL, *source = NULL;
        char path[64];
        size_t data_len = 0;
        bool bind;
        int r;

        snprintf(path, sizeof path, "mounts[%zu]", i);
        STRV_FOREACH (o, om->options) {
                bool done = false;
                unsigned long prop;
                size_t k;

                if (!**o)
                        continue;
                for (k = 0; k < ELEMENTSOF(mount_flags); k++)
                        if (strcmp(*o, mount_flags[k].name) == 0) {
                                if (mount_flags[k].clear)
                                        m->flags &= ~mount_flags[k].flag;
                                else
                                        m->flags |= mount_flags[k].flag;
                                done = true;
                                break;
                        }
                if (done)
                        continue;
                if (propagation_from_string(*o, &prop) == 0) {
                        m->propagation = prop;
                        continue;
                }
                for (k = 0; k < ELEMENTSOF(refused_options); k++)
                        if (strcmp(*o, refused_options[k].name) == 0)
                                return fail(x, -EINVAL, path, "option \"%s\": %s", *o,
                                            refused_options[k].why);
                for (k = 0; k < ELEMENTSOF(ignored_options); k++)
                        if (strcmp(*o, ignored_options[k].name) == 0) {
                                r = note(x, "%s.options: \"%s\" ignored: %s", path, *o,
                                         ignored_options[k].why);
                                if (r < 0)
                                        return r;
                                done = true;
                                break;
                        }
                if (done)
                        continue;
                /* Anything else is the file system's own ("mode=755", "size=65536k"). */
                if (strchr(*o, ','))
                        return fail(x, -EINVAL, path, "option \"%.64s\" holds a comma", *o);
                {
                        size_t n = strlen(*o);
                        char *d = realloc(data, data_len + n + 2);

                        if (!d)
                                return oom(x);
                        data = d;
                        if (data_len)
                                data[data_len++] = ',';
                        memcpy(data + data_len, *o, n + 1);
                        data_len += n;
                }
        }

        bind = !om->type || !om->type[0] || strcmp(om->type, "bind") == 0 || (m->flags & MS_BIND);
        if (bind) {
                m->flags |= MS_BIND;
                if (!om->source || !om->source[0])
                        return fail(x, -EINVAL, path, "a bind mount needs a source");
                /* A relative source is relative to the bundle (runc runs in it). */
                if (om->source[0] == '/')
                        source = strdup(om->source);
                else if (asprintf(&source, "%s/%s", x->bundle, om->source) < 0)
                        source = NULL;
                if (!source)
                        return oom(x);
                if (data) {
                        r = note(x, "%s.options: \"%s\" ignored: a bind mount takes no data", path,
                                 data);
                        if (r < 0)
                                return r;
                        free(data);
                        data = NULL;
                }
        } else if (om->source)
                source = strdup(om->source);
        else
                source = strdup(om->type);
        if (!source)
                return oom(x);

        if ((r = own(x, bind ? "bind" : om->type, &m->type)) < 0 ||
            (r = own(x, source, &m->source)) < 0 || (r = own(x, om->destination, &m->target)) < 0 ||
            (r = own(x, data, &m->data)) < 0)
                return r;
        return 0;
}

static int build_mounts(Builder *x)
{
        int r;

        if (x->c->n_mounts == 0)
                return 0;
        x->b->mounts = calloc(x->c->n_mounts, sizeof(SandboxMount));
        if (!x->b->mounts)
                return oom(x);
        for (size_t i = 0; i < x->c->n_mounts; i++) {
                r = build_mount(x, i, &x->b->mounts[i]);
                if (r < 0)
                        return r;
        }
        x->b->rootfs.mounts = x->b->mounts;
        x->b->rootfs.n_mounts = x->c->n_mounts;
        return 0;
}

/* config-linux.md "Default Devices": what every container gets. */
static const struct {
        const char *path;
        uint32_t major, minor;
} default_devices[] = {
        {"/dev/null", 1, 3},    {"/dev/zero", 1, 5}, {"/dev/full", 1, 7}, {"/dev/random", 1, 8},
        {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},  {"/dev/ptmx", 5, 2},
};

static int build_devices(Builder *x, bool cella)
{
        const OciConfig *c = x->c;
        size_t n = 0;
        int r;

        if (c->n_devices == 0)
                return 0;
        x->b->devices = calloc(c->n_devices, sizeof(SandboxDevice));
        if (!x->b->devices)
                return oom(x);
        for (size_t i = 0; i < c->n_devices; i++) {
                const OciDevice *d = &c->devices[i];
                char type = d->type == 'u' ? 'c' : d->type;
                char path[64];
                bool is_default = false, at_default_path = false;

                snprintf(path, sizeof path, "linux.devices[%zu]", i);
                for (size_t k = 0; k < ELEMENTSOF(default_devices); k++) {
                        bool same = type == 'c' && d->major == default_devices[k].major &&
                                    d->minor == default_devices[k].minor;

                        if (strcmp(d->path, default_devices[k].path) == 0) {
                                at_default_path = true;
                                if (!same)
                                        return fail(x, -EINVAL, path,
                                                    "%s is a default device of the runtime; "
                                                    "%c %lld:%lld is not it",
                                                    d->path, d->type, (long long)d->major,
                                                    (long long)d->minor);
                        }
                        if (same)
                                is_default = true;
                }
                /* The runtime makes the default devices itself. */
                if (at_default_path)
                        continue;
                /* A device cgroup guards the nodes only on a v1 host and only when
                 * linux.resources.devices has rules (docs/oci.md): under policy cella only
                 * fifos and nodes of the default devices' kinds are made. */
                if (cella && type != 'p' && !is_default)
                        return fail(x, -EINVAL, path,
                                    "%s (%c %lld:%lld): device nodes other than the default "
                                    "ones are refused under policy cella",
                                    d->path, d->type, (long long)d->major, (long long)d->minor);
                SandboxDevice *sd = &x->b->devices[n++];
                sd->type = type;
                sd->major = (uint32_t)d->major;
                sd->minor = (uint32_t)d->minor;
                sd->mode = d->file_mode_set ? (mode_t)(d->file_mode & 0777) : 0;
                sd->uid = d->uid;
                sd->gid = d->gid;
                r = own(x, d->path, &sd->path);
                if (r < 0)
                        return r;
        }
        x->b->rootfs.devices = x->b->devices;
        x->b->rootfs.n_devices = n;
        return 0;
}

static int build_rootfs(Builder *x, bool cella)
{
        const OciConfig *c = x->c;
        SandboxRootfs *fs = &x->b->rootfs;
        int r;

        r = build_rootfs_path(x);
        if (r < 0)
                return r;
        fs->path = x->b->rootfs_path;
        fs->readonly = c->root_readonly;
        if (c->rootfs_propagation &&
            propagation_from_string(c->rootfs_propagation, &fs->propagation) < 0)
                return fail(x, -EINVAL, "linux.rootfsPropagation", "unknown propagation");
        if ((r = build_mounts(x)) < 0 || (r = build_devices(x, cella)) < 0)
                return r;
        if (c->masked_paths) {
                x->b->masked_paths = strv_copy(c->masked_paths);
                if (!x->b->masked_paths)
                        return oom(x);
                fs->masked_paths = x->b->masked_paths;
        }
        if (c->readonly_paths) {
                x->b->readonly_paths = strv_copy(c->readonly_paths);
                if (!x->b->readonly_paths)
                        return oom(x);
                fs->readonly_paths = x->b->readonly_paths;
        }
        for (size_t i = 0; i < c->n_sysctls; i++)
                if (strv_extendf(&x->b->sysctls, "%s=%s", c->sysctl_keys[i], c->sysctl_values[i]) <
                    0)
                        return oom(x);
        fs->sysctls = x->b->sysctls;
        x->b->spec.rootfs = fs;
        return 0;
}

/* ---- namespaces and ids ---------------------------------------------------------------- */

static const struct {
        int type;
        const char *name;
        const char *proc;
} ns_types[] = {
        {CLONE_NEWNS, "mount", "mnt"},    {CLONE_NEWPID, "pid", "pid"},
        {CLONE_NEWIPC, "ipc", "ipc"},     {CLONE_NEWUTS, "uts", "uts"},
        {CLONE_NEWNET, "network", "net"}, {CLONE_NEWCGROUP, "cgroup", "cgroup"},
        {CLONE_NEWUSER, "user", "user"},
};

static size_t ns_index(int type)
{
        for (size_t k = 0; k < ELEMENTSOF(ns_types); k++)
                if (ns_types[k].type == type)
                        return k;
        return 0;
}

/*
 * Opens the namespace file the config names to join: it must be an nsfs file (a
 * regular file or a directory named as one is refused) of the type its entry says.
 * Under policy cella it must not be the caller's own namespace: that would be the
 * host's, shared under another name.
 */
static int open_namespace(Builder *x, size_t i, bool cella, int *ret)
{
        const OciNamespace *ns = &x->c->namespaces[i];
        const char *name = ns_types[ns_index(ns->type)].name;
        _cleanup_close_ int path_fd = -EBADF, fd = -EBADF;
        struct statfs sfs;
        struct stat st, own_st;
        char path[64], own_path[64];
        int r, type;

        snprintf(path, sizeof path, "linux.namespaces[%zu].path", i);
        /* O_PATH first: opening whatever the config names for reading could have effects
         * (a device such as /dev/watchdog starts counting when opened); only an nsfs
         * file is opened for real, through the O_PATH fd, so it cannot be swapped. */
        path_fd = open(ns->path, O_PATH | O_CLOEXEC);
        if (path_fd < 0) {
                r = negative_errno();
                return fail(x, r == -ENOENT ? -ENOENT : -EINVAL, path, "%s: %s", ns->path,
                            strerror(-r));
        }
        if (fstatfs(path_fd, &sfs) < 0 || fstat(path_fd, &st) < 0) {
                r = negative_errno();
                return fail(x, -EINVAL, path, "%s: %s", ns->path, strerror(-r));
        }
        if (sfs.f_type != NSFS_MAGIC || !S_ISREG(st.st_mode))
                return fail(x, -EINVAL, path, "%s is not a namespace file (nsfs)", ns->path);
        fd = fd_reopen(path_fd, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return fail(x, -EINVAL, path, "%s: %s", ns->path, strerror(-fd));
        type = ioctl(fd, NS_GET_NSTYPE);
        if (type < 0) {
                r = negative_errno();
                return fail(x, -EINVAL, path, "%s: NS_GET_NSTYPE: %s", ns->path, strerror(-r));
        }
        if (type != ns->type)
                return fail(x, -EINVAL, path, "%s is not a %s namespace", ns->path, name);
        if (cella) {
                snprintf(own_path, sizeof own_path, "/proc/self/ns/%s",
                         ns_types[ns_index(ns->type)].proc);
                if (stat(own_path, &own_st) == 0 && own_st.st_dev == st.st_dev &&
                    own_st.st_ino == st.st_ino)
                        return fail(x, -EINVAL, path,
                                    "%s is the host's %s namespace: sharing it is refused "
                                    "under policy cella",
                                    ns->path, name);
        }
        *ret = TAKE_FD(fd);
        return 0;
}

/*
 * The namespaces. Policy cella: every type new, except network, ipc and uts
 * namespaces the config names by path (an engine's network, a pod's shared ipc and
 * uts); a user or cgroup namespace the config leaves out is made new with a note,
 * any other type left out (shared with the host) is refused. Policy compat: the
 * config's list as written.
 */
static int build_namespaces(Builder *x, bool cella, bool *ret_userns_new, bool *ret_uts_new,
                            int *ret_uts_join_fd)
{
        const OciConfig *c = x->c;
        SandboxNamespace *list;
        size_t n = 0;
        bool present[ELEMENTSOF(ns_types)] = {false};
        int r;

        list = x->b->namespaces = calloc(ELEMENTSOF(ns_types), sizeof(SandboxNamespace));
        if (!list)
                return oom(x);
        for (size_t i = 0; i < c->n_namespaces; i++) {
                const OciNamespace *ns = &c->namespaces[i];
                size_t k = ns_index(ns->type);
                char path[64];

                snprintf(path, sizeof path, "linux.namespaces[%zu]", i);
                present[k] = true;
                list[n].type = ns->type;
                list[n].fd = -1;
                if (ns->path) {
                        if (cella && ns->type != CLONE_NEWNET && ns->type != CLONE_NEWIPC &&
                            ns->type != CLONE_NEWUTS)
                                return fail(x, -EINVAL, path,
                                            "joining a %s namespace is refused under policy "
                                            "cella (only network, ipc and uts ones)",
                                            ns_types[k].name);
                        r = open_namespace(x, i, cella, &list[n].fd);
                        if (r < 0)
                                return r;
                }
                n++;
                x->b->spec.n_namespaces = n;
        }
        if (cella)
                for (size_t k = 0; k < ELEMENTSOF(ns_types); k++) {
                        if (present[k])
                                continue;
                        if (ns_types[k].type == CLONE_NEWUSER)
                                r = note(x, "linux.namespaces: no user namespace: a new one with "
                                            "one mapped id (policy cella)");
                        else if (ns_types[k].type == CLONE_NEWCGROUP)
                                r = note(x, "linux.namespaces: no cgroup namespace: a new one "
                                            "(policy cella)");
                        else
                                return fail(x, -EINVAL, "linux.namespaces",
                                            "no %s namespace: sharing the host's is refused "
                                            "under policy cella",
                                            ns_types[k].name);
                        if (r < 0)
                                return r;
                        list[n].type = ns_types[k].type;
                        list[n].fd = -1;
                        n++;
                        x->b->spec.n_namespaces = n;
                }
        /* Under either policy: the sandbox library builds the jail in a new mount
         * namespace and its init is pid 1 of a new pid namespace (sandbox.h). */
        for (size_t k = 0; k < ELEMENTSOF(ns_types); k++) {
                if (ns_types[k].type != CLONE_NEWNS && ns_types[k].type != CLONE_NEWPID)
                        continue;
                if (!present[k])
                        return fail(x, -EINVAL, "linux.namespaces",
                                    "no %s namespace: cella-oci needs a new one under any "
                                    "policy (%s)",
                                    ns_types[k].name,
                                    ns_types[k].type == CLONE_NEWNS
                                            ? "the jail is built in it"
                                            : "the sandbox's init is its pid 1");
                for (size_t i = 0; i < c->n_namespaces; i++)
                        if (c->namespaces[i].type == ns_types[k].type && c->namespaces[i].path)
                                return fail(x, -EINVAL, "linux.namespaces",
                                            "joining a %s namespace is not supported under any "
                                            "policy",
                                            ns_types[k].name);
        }
        *ret_userns_new = false;
        *ret_uts_new = false;
        *ret_uts_join_fd = -EBADF;
        for (size_t i = 0; i < n; i++) {
                if (list[i].type == CLONE_NEWUSER && list[i].fd < 0)
                        *ret_userns_new = true;
                if (list[i].type == CLONE_NEWUTS && list[i].fd < 0)
                        *ret_uts_new = true;
                if (list[i].type == CLONE_NEWUTS && list[i].fd >= 0)
                        *ret_uts_join_fd = list[i].fd;
        }
        x->b->spec.namespaces = list;
        return 0;
}

/*
 * The hostname of the uts namespace fd (an nsfs fd), into buf (size bytes, at least
 * SANDBOX_HOSTNAME_MAX + 1): read by a child that joins it (setns(2)) and calls
 * uname(2). Returns 0, or -errno (-EIO: the child failed without a reason).
 */
static int uts_hostname(int fd, char *buf, size_t size)
{
        _cleanup_close_pair_ int p[2] = {-EBADF, -EBADF};
        _cleanup_free_ char *got = NULL;
        size_t n = 0;
        int status, r;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                struct utsname u;

                if (setns(fd, CLONE_NEWUTS) < 0 || uname(&u) < 0)
                        _exit(1);
                _exit(loop_write(p[1], u.nodename, strlen(u.nodename)) < 0 ? 1 : 0);
        }
        p[1] = safe_close(p[1]);
        r = read_full_fd(p[0], size - 1, &got, &n);
        if (RETRY_EINTR(waitpid(pid, &status, 0)) < 0)
                return negative_errno();
        if (r < 0)
                return r;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -EIO;
        memcpy(buf, got, n + 1);
        return 0;
}

static bool config_has_userns(const OciConfig *c)
{
        for (size_t i = 0; i < c->n_namespaces; i++)
                if (c->namespaces[i].type == CLONE_NEWUSER)
                        return true;
        return false;
}

static int copy_maps(Builder *x, const OciIdMapping *m, size_t n, SandboxIdMap **ret)
{
        *ret = calloc(n, sizeof(SandboxIdMap));
        if (!*ret)
                return oom(x);
        for (size_t i = 0; i < n; i++)
                (*ret)[i] = (SandboxIdMap){m[i].container_id, m[i].host_id, m[i].size};
        return 0;
}

static int build_ids(Builder *x, bool cella, bool userns_new)
{
        const OciConfig *c = x->c;
        const OciUser *u = &c->process.user;
        SandboxSpec *s = &x->b->spec;
        int r;

        s->app_uid = u->uid;
        s->app_gid = u->gid;
        s->ids_set = true;
        if (u->umask_set) {
                s->umask = (int)u->umask;
                s->umask_set = true;
        }
        if (cella) {
                if (u->n_additional_gids > 0) {
                        r = note(x, "process.user.additionalGids: dropped: policy cella maps "
                                    "one gid");
                        if (r < 0)
                                return r;
                }
                if (c->n_uid_mappings || c->n_gid_mappings) {
                        r = note(x, "linux.uidMappings, gidMappings: replaced by one mapped id "
                                    "(policy cella)");
                        if (r < 0)
                                return r;
                }
                return 0;
        }

        if (u->n_additional_gids > 0) {
                x->b->groups = calloc(u->n_additional_gids, sizeof(gid_t));
                if (!x->b->groups)
                        return oom(x);
                memcpy(x->b->groups, u->additional_gids, u->n_additional_gids * sizeof(gid_t));
                s->app_groups = x->b->groups;
                s->n_app_groups = u->n_additional_gids;
        }
        if (!userns_new) {
                if (c->n_uid_mappings || c->n_gid_mappings) {
                        r = note(x, "linux.uidMappings, gidMappings: unused: no new user "
                                    "namespace");
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        /* runc: "user namespaces enabled, but no uid mappings found". */
        if (c->n_uid_mappings == 0)
                return fail(x, -EINVAL, "linux.uidMappings",
                            "missing: a new user namespace needs mappings (policy compat)");
        if (c->n_gid_mappings == 0)
                return fail(x, -EINVAL, "linux.gidMappings",
                            "missing: a new user namespace needs mappings (policy compat)");
        if ((r = copy_maps(x, c->uid_mappings, c->n_uid_mappings, &x->b->uid_map)) < 0 ||
            (r = copy_maps(x, c->gid_mappings, c->n_gid_mappings, &x->b->gid_map)) < 0)
                return r;
        s->uid_map = x->b->uid_map;
        s->n_uid_map = c->n_uid_mappings;
        s->gid_map = x->b->gid_map;
        s->n_gid_map = c->n_gid_mappings;
        /* The sandbox library makes a new user namespace as the app's host user
         * (become_host_user()) and refuses host root for it: with the config's maps
         * that user is the host id its process uid and gid map to (runtime-tools'
         * linux_uid_mappings: 0 -> 1000). Unmapped, or mapped to host root: left 0,
         * and the library refuses with its reason. */
        s->host_uid = map_to_host(s->uid_map, s->n_uid_map, s->app_uid);
        s->host_gid = map_to_host(s->gid_map, s->n_gid_map, s->app_gid);
        return 0;
}

/* ---- capabilities, seccomp ------------------------------------------------------------- */

/*
 * Whether the container's device nodes are guarded by a device cgroup: the config has
 * linux.resources.devices rules and the host's devices controller is a v1 one
 * (/sys/fs/cgroup on a v1 or hybrid host), where cella-oci writes them
 * (src/sandbox/cgroup-resources.c; a host without that controller refuses such a
 * config at create). On cgroup v2 no eBPF device program is loaded (docs/oci.md
 * "Cgroups"): false.
 */
static bool device_cgroup_enforced(const OciConfig *c)
{
        CgroupMode mode;

        if (!c->resources.devices_set || c->resources.n_devices == 0)
                return false;
        if (cgroup_detect("/sys/fs/cgroup", &mode) < 0)
                return false;
        return mode == CGROUP_MODE_V1 || mode == CGROUP_MODE_HYBRID;
}

static int build_caps(Builder *x, bool cella, bool host_userns)
{
        const OciCaps *oc = &x->c->process.caps;
        uint64_t all = oc->bounding | oc->effective | oc->inheritable | oc->permitted | oc->ambient;
        char list[1024];
        int r;

        if (cella) {
                if (all) {
                        cap_list(all, list, sizeof list);
                        r = note(x, "process.capabilities: %s dropped (policy cella)", list);
                        if (r < 0)
                                return r;
                }
                if (!x->c->process.no_new_privileges) {
                        r = note(x, "process.noNewPrivileges: set (policy cella)");
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        if (oc->set) {
                SandboxCaps *sc = &x->b->caps;
                uint64_t mknod = UINT64_C(1) << CAP_MKNOD;

                *sc = (SandboxCaps){.bounding = oc->bounding,
                                    .effective = oc->effective,
                                    .permitted = oc->permitted,
                                    .inheritable = oc->inheritable,
                                    .ambient = oc->ambient};
                /* A device cgroup guards device nodes only on a v1 host with the config's
                 * rules (docs/oci.md; runc's defaults allow mknod of any): in the host's user
                 * namespace CAP_MKNOD could make a node of any device. With rules on a v1
                 * or hybrid host the devices controller holds (cgroup-resources.c: "a"
                 * denied, then the rules, then runc's defaults), as it does for runc. */
                if (host_userns && (all & mknod) && !device_cgroup_enforced(x->c)) {
                        sc->bounding &= ~mknod;
                        sc->effective &= ~mknod;
                        sc->permitted &= ~mknod;
                        sc->inheritable &= ~mknod;
                        sc->ambient &= ~mknod;
                        r = note(x, "process.capabilities: CAP_MKNOD dropped: a device cgroup "
                                    "guards device nodes only on cgroup v1 with "
                                    "linux.resources.devices rules");
                        if (r < 0)
                                return r;
                }
                /* runc raises each ambient capability and ignores the kernel's refusal
                 * (libcontainer/capabilities: ApplyCaps), which is what a capability
                 * outside the permitted or the inheritable set gets (capabilities(7):
                 * PR_CAP_AMBIENT_RAISE). `runc spec`'s own config asks for ambient ones
                 * without an inheritable set: skipped here likewise, with a note, so that
                 * the library's check (sandbox.h) stays strict for its other callers. */
                uint64_t lost = sc->ambient & ~(sc->permitted & sc->inheritable);

                if (lost) {
                        sc->ambient &= ~lost;
                        cap_list(lost, list, sizeof list);
                        r = note(x,
                                 "process.capabilities.ambient: %s skipped: not in both the "
                                 "permitted and the inheritable sets (as runc: the kernel "
                                 "raises no other)",
                                 list);
                        if (r < 0)
                                return r;
                }
                x->b->spec.caps = sc;
        }
        /* sandbox.h: allow_new_privs only with capabilities or host ids. */
        x->b->spec.allow_new_privs = !x->c->process.no_new_privileges && (oc->set || host_userns);
        return 0;
}

static int build_seccomp(Builder *x, bool cella)
{
        int r;

        if (cella) {
                /* Not notifying: no listener runs in cella-oci. */
                r = seccomp_program_builtin(&(SeccompOptions){.notify = false}, &x->b->seccomp);
                if (r < 0)
                        return r == -ENOMEM ? oom(x)
                                            : fail(x, r, "linux.seccomp", "builtin filter: %s",
                                                   strerror(-r));
                if (x->c->seccomp) {
                        r = note(x, "linux.seccomp: replaced by cella's allowlist (policy "
                                    "cella)");
                        if (r < 0)
                                return r;
                }
        } else {
                r = oci_seccomp_build(x->c->seccomp, &x->b->seccomp, x->err, x->errlen);
                if (r < 0)
                        return r;
                /* The sandbox library loads every filter with flags 0. */
                if (x->c->seccomp && x->c->seccomp->flags && x->c->seccomp->flags[0] &&
                    (r = note(x, "linux.seccomp.flags: not applied")) < 0)
                        return r;
        }
        x->b->spec.seccomp = x->b->seccomp;
        return 0;
}

/* ---- process --------------------------------------------------------------------------- */

/* The env's PATH value, or NULL. */
static const char *env_path(char *const *env)
{
        for (size_t i = 0; env && env[i]; i++)
                if (strncmp(env[i], "PATH=", 5) == 0)
                        return env[i] + 5;
        return NULL;
}

/*
 * process.args[0] as an absolute path inside the root (the spec's execvp semantics):
 * as given when absolute, joined to cwd when it has a "/", else the first dir of the
 * env's PATH under which the root holds an executable regular file of that name,
 * resolved inside the root (openat2 RESOLVE_IN_ROOT, so no symlink leaves it).
 */
static int build_exec_path(Builder *x)
{
        const OciProcess *p = &x->c->process;
        const char *arg0 = p->args[0], *search;
        _cleanup_close_ int root = -EBADF;
        _cleanup_free_ char *path_copy = NULL;
        char *save = NULL;

        if (arg0[0] == '/') {
                x->b->exec_path = strdup(arg0);
                return x->b->exec_path ? 0 : oom(x);
        }
        if (strchr(arg0, '/')) {
                const char *rel = strncmp(arg0, "./", 2) == 0 ? arg0 + 2 : arg0;

                if (asprintf(&x->b->exec_path, "%s%s%s", p->cwd,
                             p->cwd[strlen(p->cwd) - 1] == '/' ? "" : "/", rel) < 0) {
                        x->b->exec_path = NULL;
                        return oom(x);
                }
                return 0;
        }
        root = open(x->b->rootfs_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0)
                return fail(x, -ENOENT, "root.path", "%s: %s", x->b->rootfs_path, strerror(errno));
        search = env_path(p->env);
        path_copy = strdup(search ? search : DEFAULT_PATH);
        if (!path_copy)
                return oom(x);
        for (char *dir = strtok_r(path_copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
                _cleanup_free_ char *candidate = NULL;
                _cleanup_close_ int fd = -EBADF;
                struct stat st;

                if (dir[0] != '/')
                        continue; /* a relative entry would depend on the cwd at exec */
                if (asprintf(&candidate, "%s/%s", dir, arg0) < 0)
                        return oom(x);
                fd = (int)syscall(SYS_openat2, root, candidate, &how, sizeof how);
                if (fd < 0 || fstat(fd, &st) < 0)
                        continue;
                if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111))
                        continue;
                x->b->exec_path = TAKE_PTR(candidate);
                return 0;
        }
        /* Not in the root as it is: the first PATH dir a config mount covers may bring it
         * (a volume on /opt/bin). Assumed, with a note; a wrong guess fails the exec
         * (ENOENT at SANDBOX_STEP_EXEC), as a lookup inside the jail would. */
        free(path_copy);
        path_copy = strdup(search ? search : DEFAULT_PATH);
        if (!path_copy)
                return oom(x);
        for (char *dir = strtok_r(path_copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                if (dir[0] != '/')
                        continue;
                for (size_t i = 0; i < x->c->n_mounts; i++) {
                        const char *dest = x->c->mounts[i].destination;
                        size_t n = strlen(dest);

                        while (n > 1 && dest[n - 1] == '/')
                                n--;
                        if (strncmp(dir, dest, n) != 0 ||
                            (dir[n] != 0 && dir[n] != '/' && !(n == 1 && dest[0] == '/')))
                                continue;
                        if (asprintf(&x->b->exec_path, "%s%s%s", dir,
                                     dir[strlen(dir) - 1] == '/' ? "" : "/", arg0) < 0) {
                                x->b->exec_path = NULL;
                                return oom(x);
                        }
                        return note(x,
                                    "process.args[0]: \"%.64s\" is not in the root file system; "
                                    "%s assumed (mounts[%zu] on %s)",
                                    arg0, x->b->exec_path, i, dest);
                }
        }
        return fail(x, -ENOENT, "process.args[0]",
                    "\"%.64s\": executable file not found in the container's PATH (%.128s)", arg0,
                    search ? search : DEFAULT_PATH);
}

static int build_process(Builder *x)
{
        const OciProcess *p = &x->c->process;
        SandboxSpec *s = &x->b->spec;
        int r;

        x->b->argv = strv_copy(p->args);
        x->b->envp = strv_copy(p->env);
        if (!x->b->argv || !x->b->envp)
                return oom(x);
        s->argv = x->b->argv;
        s->envp = x->b->envp;
        r = build_exec_path(x);
        if (r < 0)
                return r;
        s->exec_path = x->b->exec_path;
        r = own(x, p->cwd, &s->workdir);
        if (r < 0)
                return r;
        if (p->n_rlimits) {
                x->b->rlimits = calloc(p->n_rlimits, sizeof(SandboxRlimit));
                if (!x->b->rlimits)
                        return oom(x);
                for (size_t i = 0; i < p->n_rlimits; i++)
                        x->b->rlimits[i] = (SandboxRlimit){p->rlimits[i].resource,
                                                           p->rlimits[i].soft, p->rlimits[i].hard};
                s->rlimits = x->b->rlimits;
                s->n_rlimits = p->n_rlimits;
        }
        if (p->oom_score_adj_set) {
                s->oom_score_adj = p->oom_score_adj;
                s->oom_score_adj_set = true;
        }
        /* The caller makes the pty (pty_socket); its size is the config's. */
        s->pty_rows = p->console_size.height;
        s->pty_cols = p->console_size.width;
        if (p->apparmor_profile && (r = note(x, "process.apparmorProfile: not applied")) < 0)
                return r;
        if (p->selinux_label && (r = note(x, "process.selinuxLabel: not applied")) < 0)
                return r;
        return 0;
}

/* ---- resources ------------------------------------------------------------------------- */

/* linux.resources beyond CgroupLimits into b->resources (cgroup.h, CgroupResources):
 * applied as runc applies them; what the host lacks is refused when the container's
 * cgroup is made (cgroup_resources_check(), cella-oci create). */
static int build_resources(Builder *x)
{
        const OciResources *res = &x->c->resources;
        CgroupResources *cr = &x->b->resources;
        int r;

        /* The same clamp as cpu_weight's (build_limits()). */
        if (res->cpu_shares)
                cr->cpu_shares = res->cpu_shares < CPU_SHARES_MIN   ? CPU_SHARES_MIN
                                 : res->cpu_shares > CPU_SHARES_MAX ? CPU_SHARES_MAX
                                                                    : res->cpu_shares;
        if ((r = own(x, res->cpuset_cpus, &cr->cpuset_cpus)) < 0 ||
            (r = own(x, res->cpuset_mems, &cr->cpuset_mems)) < 0)
                return r;
        cr->memory_low = (uint64_t)res->memory_reservation;
        cr->swappiness_set = res->swappiness_set;
        cr->swappiness = res->swappiness;
        cr->oom_kill_disable = res->disable_oom_killer;
        if (res->memory_kernel_set &&
            (r = note(x, "linux.resources.memory.kernel: not applied: deprecated (runc "
                         "ignores it too; Linux 6.x has no kmem limit)")) < 0)
                return r;
        if (res->memory_kernel_tcp_set &&
            (r = note(x, "linux.resources.memory.kernelTCP: not applied: deprecated")) < 0)
                return r;
        cr->blkio_weight = res->blkio_weight;
        cr->devices_set = res->devices_set;
        if (res->n_devices) {
                x->b->device_rules = calloc(res->n_devices, sizeof(CgroupDeviceRule));
                if (!x->b->device_rules)
                        return oom(x);
                for (size_t i = 0; i < res->n_devices; i++) {
                        const OciDeviceRule *d = &res->devices[i];
                        CgroupDeviceRule *o = &x->b->device_rules[i];

                        *o = (CgroupDeviceRule){.allow = d->allow,
                                                .type = d->type,
                                                .major = d->major,
                                                .minor = d->minor};
                        memcpy(o->access, d->access, sizeof o->access);
                }
                cr->devices = x->b->device_rules;
                cr->n_devices = res->n_devices;
        }
        if (res->n_hugepage_limits) {
                x->b->hugetlb = calloc(res->n_hugepage_limits, sizeof(CgroupHugetlbLimit));
                if (!x->b->hugetlb)
                        return oom(x);
                for (size_t i = 0; i < res->n_hugepage_limits; i++) {
                        x->b->hugetlb[i].limit = res->hugepage_limits[i].limit;
                        r = own(x, res->hugepage_limits[i].page_size, &x->b->hugetlb[i].page_size);
                        if (r < 0)
                                return r;
                }
                cr->hugetlb = x->b->hugetlb;
                cr->n_hugetlb = res->n_hugepage_limits;
        }
        cr->net_cls_classid_set = res->classid_set;
        cr->net_cls_classid = res->classid;
        if (res->n_priorities) {
                x->b->ifpriority = calloc(res->n_priorities, sizeof(CgroupIfPriority));
                if (!x->b->ifpriority)
                        return oom(x);
                for (size_t i = 0; i < res->n_priorities; i++) {
                        x->b->ifpriority[i].priority = res->priorities[i].priority;
                        r = own(x, res->priorities[i].name, &x->b->ifpriority[i].ifname);
                        if (r < 0)
                                return r;
                }
                cr->ifpriority = x->b->ifpriority;
                cr->n_ifpriority = res->n_priorities;
        }
        if (res->n_unified) {
                x->b->unified_keys = strv_copy(res->unified_keys);
                x->b->unified_values = strv_copy(res->unified_values);
                if (!x->b->unified_keys || !x->b->unified_values)
                        return oom(x);
                cr->unified_keys = x->b->unified_keys;
                cr->unified_values = x->b->unified_values;
                cr->n_unified = res->n_unified;
        }
        x->b->spec.limits.resources = cr;
        return 0;
}

static int build_limits(Builder *x)
{
        const OciResources *res = &x->c->resources;
        CgroupLimits *l = &x->b->spec.limits;
        int r;

        l->memory_max = (uint64_t)res->memory_limit;
        l->pids_max = (uint64_t)res->pids_limit;
        if (res->cpu_period &&
            (res->cpu_period < CPU_PERIOD_MIN_US || res->cpu_period > CPU_PERIOD_MAX_US))
                return fail(x, -EINVAL, "linux.resources.cpu.period",
                            "%llu is out of range (%u to %u microseconds)",
                            (unsigned long long)res->cpu_period, CPU_PERIOD_MIN_US,
                            CPU_PERIOD_MAX_US);
        if (res->cpu_quota && res->cpu_quota < CPU_QUOTA_MIN_US)
                return fail(x, -EINVAL, "linux.resources.cpu.quota",
                            "%lld is below %u microseconds", (long long)res->cpu_quota,
                            CPU_QUOTA_MIN_US);
        l->cpu_quota_us = (uint64_t)res->cpu_quota;
        l->cpu_period_us = res->cpu_quota ? res->cpu_period : 0;
        if (res->cpu_shares) {
                /* crun's conversion of v1 shares (2..262144) to a v2 weight (1..10000). */
                uint64_t shares = res->cpu_shares;

                if (shares < CPU_SHARES_MIN)
                        shares = CPU_SHARES_MIN;
                if (shares > CPU_SHARES_MAX)
                        shares = CPU_SHARES_MAX;
                l->cpu_weight = 1 + ((shares - CPU_SHARES_MIN) * 9999) / (CPU_SHARES_MAX - 2);
        }
        if (res->memory_swap &&
            (r = note(x, "linux.resources.memory.swap: not applied: cella gives a container no "
                         "swap")) < 0)
                return r;
        r = build_resources(x);
        if (r < 0)
                return r;
        STRV_FOREACH (k, res->ignored)
                if ((r = note(x, "%s: not applied", *k)) < 0)
                        return r;
        return 0;
}

/* ---- the whole ------------------------------------------------------------------------- */

static int build(Builder *x)
{
        const OciConfig *c = x->c;
        SandboxSpec *s = &x->b->spec;
        bool cella, userns_new = false, uts_new = false;
        int uts_join_fd = -EBADF;
        int r;

        r = oci_policy_from_config(c, &x->b->policy, x->err, x->errlen);
        if (r < 0)
                return r;
        cella = x->b->policy == OCI_POLICY_CELLA;
        if (!c->process_set)
                return fail(x, -EINVAL, "process", "missing (create needs it)");
        if (c->personality_domain && strcmp(c->personality_domain, "LINUX32") == 0)
                return fail(x, -EINVAL, "linux.personality.domain", "LINUX32 is not supported");
        if (cella && c->seccomp && c->seccomp->listener_path &&
            (r = note(x, "linux.seccomp.listenerPath: unused (policy cella)")) < 0)
                return r;

        if ((r = build_rootfs(x, cella)) < 0 ||
            (r = build_namespaces(x, cella, &userns_new, &uts_new, &uts_join_fd)) < 0 ||
            (r = build_ids(x, cella, userns_new)) < 0 ||
            (r = build_caps(x, cella, !cella && !config_has_userns(c))) < 0 ||
            (r = build_seccomp(x, cella)) < 0 || (r = build_process(x)) < 0 ||
            (r = build_limits(x)) < 0)
                return r;

        if (c->hostname && *c->hostname) {
                /* config.md: a hostname needs a uts namespace of the container's (runc:
                 * "unable to set hostname without a private UTS namespace"): the host's,
                 * shared, is refused. */
                if (!uts_new && uts_join_fd < 0)
                        return fail(x, -EINVAL, "hostname",
                                    "needs a new or joined uts namespace (the host's is shared)");
                if (strlen(c->hostname) > SANDBOX_HOSTNAME_MAX)
                        return fail(x, -EINVAL, "hostname", "longer than %d bytes",
                                    SANDBOX_HOSTNAME_MAX);
                /* A joined one: runc names it. Under policy cella it is someone else's
                 * (a pod's): only its own name is accepted (a no-op). */
                if (!uts_new && cella) {
                        char cur[SANDBOX_HOSTNAME_MAX + 2];

                        r = uts_hostname(uts_join_fd, cur, sizeof cur);
                        if (r < 0)
                                return fail(x, r, "hostname",
                                            "read the joined uts namespace's name: %s",
                                            strerror(-r));
                        if (strcmp(cur, c->hostname) != 0)
                                return fail(x, -EINVAL, "hostname",
                                            "\"%s\" differs from the joined uts namespace's "
                                            "\"%s\": renaming a joined uts namespace is refused "
                                            "under policy cella (policy compat renames it, as "
                                            "runc)",
                                            c->hostname, cur);
                } else if (!uts_new)
                        s->hostname_in_joined_uts = true;
                r = own(x, c->hostname, &s->hostname);
                if (r < 0)
                        return r;
        } else {
                /* config.md: hostname is optional, and runc sets none when it is absent or
                 * empty: a new uts namespace keeps the name it was made with, a copy of
                 * the caller's. The sandbox library names every new uts namespace (and
                 * wants a name for its messages): the caller's own name, the same result.
                 * (runtime-tools' hostname test gives ""; `runc spec` configs may omit
                 * it.) */
                struct utsname u;

                if (uname(&u) < 0)
                        return fail(x, -errno, "hostname", "none given, and uname() failed");
                r = own(x, u.nodename, &s->hostname);
                if (r < 0)
                        return r;
        }
        if (c->domainname && (r = note(x, "domainname: not applied")) < 0)
                return r;
        if (c->mount_label && (r = note(x, "linux.mountLabel: not applied")) < 0)
                return r;
        STRV_FOREACH (n, c->notes)
                if (strv_extend(&x->b->notes, *n) < 0)
                        return oom(x);

        s->detached = true;
        s->survive_parent = true;
        s->start_fifo_fd = -1;
        s->pty_socket = -1;
        s->channel_fd = -1;
        s->stdio[0] = s->stdio[1] = s->stdio[2] = -1;
        return 0;
}

int oci_spec_build(const OciConfig *c, const char *bundle, OciSpecBuild *b, char *err,
                   size_t errlen)
{
        Builder x = {.c = c, .bundle = bundle, .b = b, .err = err, .errlen = errlen};
        int r;

        if (!b)
                return -EINVAL;
        *b = (OciSpecBuild){0};
        if (err && errlen)
                err[0] = 0;
        if (!c || !bundle)
                return -EINVAL;
        r = build(&x);
        if (r < 0) {
                oci_spec_build_done(b);
                return r;
        }
        return 0;
}

int oci_spec_build_set_host_ids(OciSpecBuild *b, uid_t uid, gid_t gid)
{
        if (!b)
                return -EINVAL;
        if (b->policy == OCI_POLICY_CELLA) {
                if (uid == 0 || gid == 0 || uid == (uid_t)-1 || gid == (gid_t)-1)
                        return -EINVAL;
                if (!b->uid_map) {
                        b->uid_map = calloc(1, sizeof(SandboxIdMap));
                        if (!b->uid_map)
                                return -ENOMEM;
                }
                if (!b->gid_map) {
                        b->gid_map = calloc(1, sizeof(SandboxIdMap));
                        if (!b->gid_map)
                                return -ENOMEM;
                }
                b->uid_map[0] = (SandboxIdMap){b->spec.app_uid, uid, 1};
                b->gid_map[0] = (SandboxIdMap){b->spec.app_gid, gid, 1};
                b->spec.uid_map = b->uid_map;
                b->spec.n_uid_map = 1;
                b->spec.gid_map = b->gid_map;
                b->spec.n_gid_map = 1;
        }
        b->spec.host_uid = uid;
        b->spec.host_gid = gid;
        return 0;
}

void oci_spec_build_done(OciSpecBuild *b)
{
        if (!b)
                return;
        for (size_t i = 0; b->namespaces && i < b->spec.n_namespaces; i++)
                safe_close(b->namespaces[i].fd);
        free(b->namespaces);
        free(b->mounts);
        free(b->devices);
        free(b->uid_map);
        free(b->gid_map);
        free(b->rlimits);
        free(b->groups);
        strv_free(b->sysctls);
        free(b->rootfs_path);
        free(b->exec_path);
        strv_free(b->argv);
        strv_free(b->envp);
        strv_free(b->masked_paths);
        strv_free(b->readonly_paths);
        strv_free(b->strings);
        seccomp_program_free(b->seccomp);
        strv_free(b->notes);
        free(b->device_rules);
        free(b->hugetlb);
        free(b->ifpriority);
        strv_free(b->unified_keys);
        strv_free(b->unified_values);
        *b = (OciSpecBuild){0};
}
