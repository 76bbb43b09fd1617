/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The OCI jail (SandboxSpec.rootfs; docs/oci.md "config.json support"): the caller's
 * root file system and the mounts its config lists, instead of the runtime's tmpfs
 * root of mount.c. The steps are runc's and crun's (prepareRootfs: make / a slave,
 * bind the root onto itself, the mounts in order, the default devices, the spec's
 * devices, sysctls, masked and read-only paths, pivot_root, a read-only root), with
 * cella's care:
 *
 *  - every target is resolved inside the root with openat2(RESOLVE_IN_ROOT |
 *    RESOLVE_NO_MAGICLINKS) from an fd of the root, so a symlink in the root file
 *    system ("/evil -> /etc", "../../..") resolves as it would after the pivot, in
 *    the root, never on the host; a magic link (/proc/self/root, /proc/<pid>/fd/N of
 *    a proc mounted earlier) is refused; missing mount points are made, a directory
 *    or an empty file after the source's type (runc's createIfNotExists), with
 *    mkdirat/openat(O_EXCL) on the fd of a parent so resolved;
 *  - every mount is made detached (open_tree(OPEN_TREE_CLONE) for a bind, fsopen,
 *    fsconfig, fsmount for a file system), given its attributes with
 *    mount_setattr()/fsmount() before anyone can see it, and moved onto the fd of
 *    its resolved target (move_mount(MOVE_MOUNT_T_EMPTY_PATH)): the target is never
 *    looked up again by path;
 *  - / is made a slave first, whatever the config's rootfsPropagation, so nothing
 *    mounted in the jail propagates to the host; the config's propagation is set on
 *    the jail's root after the pivot (a shared root then has the jail's peers only).
 *
 * It runs in the child once it is in every namespace of the sandbox but the user
 * one (spawn.c calls it after child_join()): a sysfs mount then shows the
 * sandbox's network namespace, a cgroup mount its cgroup namespace (its own leaf as
 * the root), and the sysctls land in its network and ipc namespaces, as with runc,
 * whose init joins the namespaces before prepareRootfs.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/macro.h"
#include "sandbox/sandbox-internal.h"

/* The mount(2) flags a SandboxMount may carry; any other (MS_REMOUNT, MS_MOVE, a
 * propagation flag in flags) is refused at SANDBOX_STEP_PREPARE. */
#define ROOTFS_MOUNT_FLAGS                                                                         \
        (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS | MS_DIRSYNC |              \
         MS_MANDLOCK | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME | MS_LAZYTIME |   \
         MS_BIND | MS_REC | MS_SILENT)
#define ROOTFS_PROPAGATION (MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE)

/* The runtime spec's default devices (config-linux.md "Default Devices"), bound from
 * the host's nodes. */
static const char *const default_devices[] = {"null", "zero", "full", "random", "urandom", "tty"};

static bool path_ok(const char *path);

/* How a target is resolved in the root: in it, never through a magic link. */
static int open_in_root(int rootfd, const char *rel, int flags)
{
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC),
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);

        return fd < 0 ? negative_errno() : fd;
}

/* rel with its leading slashes off ("" for the root itself). */
static const char *relative(const char *path)
{
        while (*path == '/')
                path++;
        return path;
}

/*
 * Writes path (relative to dir, a relative path below the root, "" the root), with
 * ".", empty components and ".." resolved lexically and ".." at the root staying
 * there (as RESOLVE_IN_ROOT does), into buf: "a/b/c", "" for the root. Returns 0 or
 * -ENAMETOOLONG.
 */
static int normalize(const char *dir, const char *path, char *buf, size_t size)
{
        char tmp[PATH_MAX];
        size_t n = 0;
        char *save = NULL;

        if (snprintf(tmp, sizeof tmp, "%s/%s", path[0] == '/' ? "" : dir, path) >= (int)sizeof tmp)
                return -ENAMETOOLONG;
        buf[0] = 0;
        for (char *c = strtok_r(tmp, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (strcmp(c, ".") == 0)
                        continue;
                if (strcmp(c, "..") == 0) {
                        char *last = strrchr(buf, '/');

                        n = last ? (size_t)(last - buf) : 0;
                        buf[n] = 0;
                        continue;
                }
                if (n + !!n + strlen(c) + 1 > size)
                        return -ENAMETOOLONG;
                n += (size_t)sprintf(buf + n, "%s%s", n ? "/" : "", c);
        }
        return 0;
}

/* At most this many symlinks followed while making one target (Linux's MAXSYMLINKS). */
#define MAKE_TARGET_LINKS 40

static int make_target_links(int rootfd, const char *rel, bool is_dir, unsigned *links)
{
        char path[PATH_MAX];
        int fd, r;

        r = normalize("", rel, path, sizeof path);
        if (r < 0)
                return r;
        fd = open_in_root(rootfd, path, O_PATH);
        if (fd != -ENOENT || !*path)
                return fd;
        /* Each component in turn: open it if it is there, else make it in its parent. */
        for (char *end = path;;) {
                _cleanup_close_ int parent = -EBADF;
                char *slash = strchr(end, '/');
                bool leaf = !slash;
                struct stat st;
                char *name;

                if (slash)
                        *slash = 0;
                r = open_in_root(rootfd, path, O_PATH);
                if (r >= 0) {
                        if (leaf)
                                return r;
                        safe_close(r);
                        *slash = '/';
                        end = slash + 1;
                        continue;
                }
                if (r != -ENOENT)
                        return r;
                name = strrchr(path, '/');
                if (name) {
                        *name = 0;
                        parent = open_in_root(rootfd, path, O_PATH | O_DIRECTORY);
                        *name++ = '/';
                } else {
                        parent = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
                        if (parent < 0)
                                parent = negative_errno();
                        name = path;
                }
                if (parent < 0)
                        return parent;
                if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
                        /* A dangling symlink: what it names is made, in the root
                         * (runc's MkdirAllInRoot), then the walk goes on through it. */
                        char link[PATH_MAX], dir[PATH_MAX], target[PATH_MAX];
                        ssize_t k = readlinkat(parent, name, link, sizeof link - 1);

                        if (k < 0)
                                return negative_errno();
                        link[k] = 0;
                        if (++*links > MAKE_TARGET_LINKS)
                                return -ELOOP;
                        snprintf(dir, sizeof dir, "%.*s", (int)(name - path), path);
                        r = normalize(dir, link, target, sizeof target);
                        if (r < 0)
                                return r;
                        r = make_target_links(rootfd, target, leaf ? is_dir : true, links);
                        if (r < 0)
                                return r;
                        safe_close(r);
                } else if (leaf && !is_dir) {
                        r = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
                                   0644);
                        if (r < 0)
                                return negative_errno();
                        safe_close(r);
                } else if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                r = open_in_root(rootfd, path, O_PATH);
                if (r < 0 || leaf)
                        return r;
                safe_close(r);
                *slash = '/';
                end = slash + 1;
        }
}

/*
 * Opens (O_PATH) the target rel below the root, making what is missing: the parent
 * directories, then the leaf, a directory (is_dir) or an empty file. Each missing
 * component is made with mkdirat()/openat(O_CREAT | O_EXCL) on the fd of its parent,
 * itself resolved in the root; a dangling symlink on the way has what it names made
 * in the root (resolved as RESOLVE_IN_ROOT would: ".." stops at the root), so
 * nothing is ever made outside it. Returns the fd or -errno (-ELOOP: a magic link on
 * the way, or more than 40 symlinks).
 */
static int make_target(int rootfd, const char *rel, bool is_dir)
{
        unsigned links = 0;

        return make_target_links(rootfd, rel, is_dir, &links);
}

/* mount(2)'s per-mount flags as mount attributes (MOUNT_ATTR_*); *atime gets whether
 * an atime mode was asked for (it is a field, cleared with MOUNT_ATTR__ATIME). */
static uint64_t attr_of(unsigned long flags, bool *atime)
{
        uint64_t a = 0;

        if (flags & MS_RDONLY)
                a |= MOUNT_ATTR_RDONLY;
        if (flags & MS_NOSUID)
                a |= MOUNT_ATTR_NOSUID;
        if (flags & MS_NODEV)
                a |= MOUNT_ATTR_NODEV;
        if (flags & MS_NOEXEC)
                a |= MOUNT_ATTR_NOEXEC;
        if (flags & MS_NODIRATIME)
                a |= MOUNT_ATTR_NODIRATIME;
        *atime = true;
        if (flags & MS_NOATIME)
                a |= MOUNT_ATTR_NOATIME;
        else if (flags & MS_STRICTATIME)
                a |= MOUNT_ATTR_STRICTATIME;
        else if (flags & MS_RELATIME)
                a |= MOUNT_ATTR_RELATIME;
        else
                *atime = false;
        return a;
}

/* Sets flags' attributes and propagation on the detached mount fd (recursively with
 * rec). Returns 0 or -errno. */
static int set_attr(int fd, unsigned long flags, unsigned long propagation, bool rec)
{
        bool atime;
        struct mount_attr ma = {.attr_set = attr_of(flags, &atime),
                                .propagation = propagation & ROOTFS_PROPAGATION};

        if (atime)
                ma.attr_clr |= MOUNT_ATTR__ATIME;
        if (!ma.attr_set && !ma.attr_clr && !ma.propagation)
                return 0;
        if (mount_setattr(fd, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0), &ma, sizeof ma) < 0)
                return negative_errno();
        return 0;
}

static int attach(int mnt, int target)
{
        if (move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return negative_errno();
        return 0;
}

static bool is_bind(const SandboxMount *m)
{
        return (m->flags & MS_BIND) || (m->type && strcmp(m->type, "bind") == 0) ||
               (m->type && strcmp(m->type, "rbind") == 0);
}

/* Appends the file system context's own message (fsopen(2): "e tmpfs: Bad value for
 * 'mode'") to buf, if it left one. */
static void fs_log(int fs, char *buf, size_t size)
{
        char msg[160];
        ssize_t k;

        if (fs < 0)
                return;
        k = read(fs, msg, sizeof msg - 1);
        if (k <= 2)
                return;
        msg[k] = 0;
        msg[strcspn(msg, "\n")] = 0;
        snprintf(buf, size, " (%s)", msg + 2);
}

/*
 * A new detached mount of a file system: fsopen(type), the source, each of data's
 * comma-separated options (key=value a string, a bare key a flag), the superblock
 * flags of flags (sync, dirsync, lazytime, mand, silent), then fsmount with flags'
 * mount attributes (read-only is the mount's, not the superblock's: a sysfs
 * superblock is shared by every sysfs mount of the network namespace).
 * uid= and gid= options are the container's ids (id_option()). Returns the mount fd or
 * -errno, with why in why (size bytes).
 */
static int host_id(const SandboxSpec *spec, uint32_t inside, bool gid, uint32_t *ret);

/* A uid= or gid= option's value, with spec's map (NULL: none): the container's id
 * mapped to the host's when the map holds it (the mount is made before the user
 * namespace, so the kernel reads ids in the host's), else as it is (an id the map
 * leaves out owns nothing the app can use: podman's devpts gid=5 under cella's map of
 * one id). Into buf. */
static const char *id_option(const SandboxSpec *spec, const char *key, const char *value, char *buf,
                             size_t size)
{
        bool gid = strcmp(key, "gid") == 0;
        unsigned long v;
        uint32_t host;
        char *end;

        if (!spec || (!gid && strcmp(key, "uid") != 0) || !isdigit((unsigned char)*value))
                return value;
        errno = 0;
        v = strtoul(value, &end, 10);
        if (errno || *end || v > UINT32_MAX || host_id(spec, (uint32_t)v, gid, &host) < 0)
                return value;
        snprintf(buf, size, "%u", (unsigned)host);
        return buf;
}

static int new_fs(const SandboxSpec *spec, const char *type, const char *source, const char *data,
                  unsigned long flags, char *why, size_t size)
{
        static const struct {
                unsigned long flag;
                const char *name;
        } sb_flags[] = {
                {MS_SYNCHRONOUS, "sync"}, {MS_DIRSYNC, "dirsync"}, {MS_LAZYTIME, "lazytime"},
                {MS_MANDLOCK, "mand"},    {MS_SILENT, "silent"},
        };
        _cleanup_free_ char *opts = NULL;
        _cleanup_close_ int fs = -EBADF;
        bool atime;
        int fd;

        *why = 0;
        fs = fsopen(type, FSOPEN_CLOEXEC);
        if (fs < 0) {
                if (errno == ENODEV)
                        snprintf(why, size, " (no such file system type)");
                return negative_errno();
        }
        if (source && *source && fsconfig(fs, FSCONFIG_SET_STRING, "source", source, 0) < 0)
                goto fail;
        for (size_t i = 0; i < ELEMENTSOF(sb_flags); i++)
                if ((flags & sb_flags[i].flag) &&
                    fsconfig(fs, FSCONFIG_SET_FLAG, sb_flags[i].name, NULL, 0) < 0)
                        goto fail;
        if (data && *data) {
                char *save = NULL;

                opts = strdup(data);
                if (!opts)
                        return -ENOMEM;
                for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
                        char *eq = strchr(o, '=');
                        int k;

                        if (eq) {
                                char id[16];

                                *eq = 0;
                                k = fsconfig(fs, FSCONFIG_SET_STRING, o,
                                             id_option(spec, o, eq + 1, id, sizeof id), 0);
                        } else
                                k = fsconfig(fs, FSCONFIG_SET_FLAG, o, NULL, 0);
                        if (k < 0) {
                                int e = errno;

                                snprintf(why, size, " (option %s)", o);
                                fs_log(fs, why + strlen(why), size - strlen(why));
                                return -e;
                        }
                }
        }
        if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                goto fail;
        fd = fsmount(fs, FSMOUNT_CLOEXEC, (unsigned)attr_of(flags, &atime));
        if (fd < 0)
                goto fail;
        return fd;
fail : {
        int e = errno;

        fs_log(fs, why, size);
        return -e;
}
}

/* ---- cgroup mounts ------------------------------------------------------------------ */

/* Whether the host's /sys/fs/cgroup is a cgroup2 file system (a v2 host). */
static bool host_cgroup2(void)
{
        struct statfs sf;

        return statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

/*
 * A v1 hierarchy's mount in the sandbox's cgroup namespace, from the host's super
 * options (mountinfo: "rw,cpu,cpuacct", "rw,xattr,name=systemd"): only the controllers
 * and the name are passed, never release_agent (refused outside the initial cgroup
 * namespace anyway) nor a mode flag. Returns the mount fd or -errno.
 */
static int new_cgroup_v1(const char *super, unsigned long flags, char *why, size_t size)
{
        _cleanup_free_ char *opts = strdup(super);
        _cleanup_close_ int fs = -EBADF;
        char *save = NULL;
        bool atime;
        int fd;

        if (!opts)
                return -ENOMEM;
        fs = fsopen("cgroup", FSOPEN_CLOEXEC);
        if (fs < 0)
                return negative_errno();
        for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
                int k = 0;

                if (strncmp(o, "name=", 5) == 0)
                        k = fsconfig(fs, FSCONFIG_SET_STRING, "name", o + 5, 0);
                else if (strcmp(o, "rw") == 0 || strcmp(o, "ro") == 0 || strcmp(o, "xattr") == 0 ||
                         strcmp(o, "noprefix") == 0 || strcmp(o, "clone_children") == 0 ||
                         strcmp(o, "cpuset_v2_mode") == 0 || strcmp(o, "favordynmods") == 0 ||
                         strncmp(o, "release_agent=", 14) == 0 || strchr(o, '='))
                        continue;
                else
                        k = fsconfig(fs, FSCONFIG_SET_FLAG, o, NULL, 0);
                if (k < 0) {
                        int e = errno;

                        snprintf(why, size, " (controller %s)", o);
                        return -e;
                }
        }
        if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
            (fd = fsmount(fs, FSMOUNT_CLOEXEC, (unsigned)attr_of(flags, &atime))) < 0) {
                int e = errno;

                fs_log(fs, why, size);
                return -e;
        }
        return fd;
}

/* Whether super (a v1 hierarchy's super options, mountinfo) names the controller or
 * "name=" token tok. */
static bool super_has(const char *super, const char *tok, size_t n)
{
        for (const char *p = super; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
                if (strncmp(p, tok, n) == 0 && (p[n] == ',' || p[n] == 0))
                        return true;
        return false;
}

/*
 * This process's cgroup in a hierarchy, as /proc/self/cgroup tells it (relative to
 * the root of the cgroup namespace it is in): the v1 one whose super options are super,
 * or the cgroup2 one (super NULL). Into buf; returns 0, -ENOENT, -ENAMETOOLONG.
 */
static int own_cgroup_path(const char *super, char *buf, size_t size)
{
        _cleanup_(fclosep) FILE *f = fopen("/proc/self/cgroup", "re");
        char *line = NULL;
        size_t cap = 0;
        int r = -ENOENT;

        if (!f)
                return negative_errno();
        while (r == -ENOENT && getline(&line, &cap, f) > 0) {
                /* "id:controllers:path" */
                char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;
                bool match;

                if (!p)
                        continue;
                *p++ = 0;
                p[strcspn(p, "\n")] = 0;
                *c++ = 0;
                if (!super)
                        match = strcmp(line, "0") == 0 && !*c;
                else {
                        match = *c != 0;
                        /* Every controller (or name=) of the line is one of super's. */
                        for (char *t = c; match && t && *t;) {
                                size_t n = strcspn(t, ",");

                                match = super_has(super, t, n);
                                t = t[n] ? t + n + 1 : NULL;
                        }
                }
                if (match)
                        r = snprintf(buf, size, "%s", p) >= (int)size ? -ENAMETOOLONG : 0;
        }
        free(line);
        return r;
}

/*
 * Narrows mnt, a cgroup hierarchy freshly mounted and attached (its fd), to this
 * process's own cgroup in it (super as own_cgroup_path()): when the sandbox shares
 * the caller's cgroup namespace (podman asks for none on a v1 or hybrid host), a
 * mount shows the caller's whole tree, and the container gets its own cgroup
 * directory instead (runc binds the same); in a cgroup namespace of its own, its
 * cgroup is the root already and nothing is done. The clone is made, the whole
 * mount detached (through its fd), and the clone attached in its place (at dfd/name).
 * Returns 0 or -errno with why.
 */
static int narrow_cgroup(int mnt, int dfd, const char *name, const char *super, unsigned long flags,
                         char *why, size_t size)
{
        char own[PATH_MAX], self[64];
        _cleanup_close_ int sub = -EBADF;
        int r = own_cgroup_path(super, own, sizeof own);

        if (r < 0) {
                snprintf(why, size, " (no cgroup of its own in %.64s)", *name ? name : "cgroup2");
                return r;
        }
        if (!*relative(own))
                return 0;
        if (!path_ok(own)) {
                snprintf(why, size, " (its cgroup %.64s is outside its namespace)", own);
                return -EPERM;
        }
        sub = open_tree(mnt, relative(own), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (sub < 0)
                return negative_errno();
        r = set_attr(sub, flags, 0, false);
        if (r < 0)
                return r;
        snprintf(self, sizeof self, "/proc/self/fd/%d", mnt);
        if (umount2(self, MNT_DETACH) < 0)
                return negative_errno();
        if (move_mount(sub, "", dfd, name,
                       MOVE_MOUNT_F_EMPTY_PATH | (*name ? 0 : MOVE_MOUNT_T_EMPTY_PATH)) < 0)
                return negative_errno();
        return 0;
}

/*
 * Mounts m, a "cgroup" or "cgroup2" mount, on target, with m's attributes (podman:
 * read-only), each hierarchy narrowed to the sandbox's own cgroup (narrow_cgroup():
 * the root a mount shows in a cgroup namespace of its own, its directory when it
 * shares the caller's). On a v2 host, or for "cgroup2", the cgroup2 hierarchy (runc does
 * the same for "cgroup" on a v2 host). On a v1 or hybrid host, for "cgroup": what
 * runc makes, a tmpfs at target with each of the host's hierarchies under
 * /sys/fs/cgroup at its own name in it (the v1 controllers, "unified" the cgroup2 one
 * of a hybrid host), the host's symlinks there ("cpu" -> "cpu,cpuacct") made again,
 * then the tmpfs made read-only when m is. Returns 0 or -errno with why.
 */
static int mount_cgroup(const SandboxMount *m, int target, char *why, size_t size)
{
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_close_ int tmp = -EBADF, dir = -EBADF;
        char *line = NULL;
        size_t cap = 0;
        int r = 0;

        if (strcmp(m->type, "cgroup2") == 0 || host_cgroup2()) {
                _cleanup_close_ int fd = new_fs(NULL, "cgroup2", NULL, NULL, m->flags, why, size);

                if (fd < 0)
                        return fd;
                r = attach(fd, target);
                return r < 0 ? r : narrow_cgroup(fd, target, "", NULL, m->flags, why, size);
        }
        tmp = new_fs(NULL, "tmpfs", "cgroup", "mode=0755,size=64k",
                     m->flags & ~(unsigned long)MS_RDONLY, why, size);
        if (tmp < 0)
                return tmp;
        r = attach(tmp, target);
        if (r < 0)
                return r;
        f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return negative_errno();
        while (r >= 0 && getline(&line, &cap, f) > 0) {
                /* id parent maj:min root mountpoint options [optional...] - type source super */
                char mp[PATH_MAX], fstype[32], super[512];
                const char *sep = strstr(line, " - ");
                const char *name;
                _cleanup_close_ int sub = -EBADF;

                if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 ||
                    sscanf(sep + 3, "%31s %*s %511s", fstype, super) != 2)
                        continue;
                if (strncmp(mp, "/sys/fs/cgroup/", 15) != 0 || strchr(mp + 15, '/') || !mp[15] ||
                    strchr(mp, '\\'))
                        continue;
                name = mp + 15;
                if (strcmp(fstype, "cgroup") == 0)
                        sub = new_cgroup_v1(super, m->flags, why, size);
                else if (strcmp(fstype, "cgroup2") == 0)
                        sub = new_fs(NULL, "cgroup2", NULL, NULL, m->flags, why, size);
                else
                        continue;
                if (sub < 0) {
                        r = sub;
                        snprintf(why + strlen(why), size - strlen(why), " (hierarchy %.64s)", name);
                        break;
                }
                if (mkdirat(tmp, name, 0755) < 0 && errno != EEXIST) {
                        r = negative_errno();
                        break;
                }
                if (move_mount(sub, "", tmp, name, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                        r = negative_errno();
                else
                        r = narrow_cgroup(sub, tmp, name,
                                          strcmp(fstype, "cgroup") == 0 ? super : NULL, m->flags,
                                          why, size);
                if (r < 0)
                        snprintf(why + strlen(why), size - strlen(why), " (hierarchy %.64s)", name);
        }
        free(line);
        if (r < 0)
                return r;
        /* The host's aliases of comounted controllers. */
        dir = open("/sys/fs/cgroup", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir >= 0) {
                DIR *d = fdopendir(dir);

                if (d)
                        dir = -EBADF; /* the DIR's now */

                for (struct dirent *de; d && (de = readdir(d));) {
                        char link[256];
                        ssize_t k;

                        if (de->d_type != DT_LNK)
                                continue;
                        k = readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
                        if (k <= 0 || memchr(link, '/', (size_t)k))
                                continue;
                        link[k] = 0;
                        (void)symlinkat(link, tmp, de->d_name);
                }
                if (d)
                        closedir(d);
        }
        if (m->flags & MS_RDONLY) {
                struct mount_attr ma = {.attr_set = MOUNT_ATTR_RDONLY};

                if (mount_setattr(tmp, "", AT_EMPTY_PATH, &ma, sizeof ma) < 0)
                        return negative_errno();
        }
        return 0;
}

/* ---- the mounts ---------------------------------------------------------------------- */

/*
 * Whether a mount may go on target, resolved from rel (relative to the root): not
 * onto anything of a proc file system mounted earlier, but a proc on /proc and a bind
 * of a file on one of the files lxcfs replaces (runc's checkProcMount, after
 * CVE-2019-16884: a mount over /proc/self/attr/... turned off an LSM's profile; here
 * it would hide a /proc file the masks and read-only paths rely on, and
 * /proc/sys/... read-only binds). Returns 0 or -EPERM.
 */
static int check_proc_target(int target, const char *type, const char *rel)
{
        static const char *const lxcfs[] = {
                "proc/cpuinfo", "proc/diskstats",
                "proc/meminfo", "proc/stat",
                "proc/swaps",   "proc/uptime",
                "proc/loadavg", "proc/slabinfo",
                "proc/net/dev", "proc/sys/kernel/ns_last_pid",
        };
        char path[PATH_MAX];
        struct statfs sf;

        if (fstatfs(target, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC)
                return 0;
        if (normalize("", rel, path, sizeof path) < 0)
                return -EPERM;
        if (strcmp(type, "proc") == 0 && strcmp(path, "proc") == 0)
                return 0;
        if (strcmp(type, "bind") == 0)
                for (size_t i = 0; i < ELEMENTSOF(lxcfs); i++)
                        if (strcmp(path, lxcfs[i]) == 0)
                                return 0;
        return -EPERM;
}

/* Mounts m (the i-th) on the root below rootfd. Returns 0 or -errno with err naming the
 * mount. */
static int mount_one(int rootfd, const SandboxSpec *spec, const SandboxMount *m, size_t i,
                     SandboxError *err)
{
        const char *type = is_bind(m) ? "bind" : m->type;
        const char *rel = relative(m->target);
        _cleanup_close_ int target = -EBADF, mnt = -EBADF;
        char why[200] = "";
        bool rec = (m->flags & MS_REC) || (m->type && strcmp(m->type, "rbind") == 0);
        bool is_dir = true;
        int r;

        if (is_bind(m)) {
                struct stat st;

                /* The source is the caller's (config.json's) host path, followed as
                 * mount(2) would, looked up once: the clone's type decides the mount
                 * point's (runc's createIfNotExists). */
                mnt = open_tree(AT_FDCWD, m->source,
                                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0));
                if (mnt < 0 || fstat(mnt, &st) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                            "mount %zu (bind of %s on %s): source", i, m->source,
                                            m->target);
                is_dir = S_ISDIR(st.st_mode);
                r = set_attr(mnt, m->flags, m->propagation, rec);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, r,
                                            "mount %zu (bind of %s on %s): attributes", i,
                                            m->source, m->target);
        }
        target = make_target(rootfd, rel, is_dir);
        if (target < 0)
                return sandbox_fail(
                        err, SANDBOX_STEP_MOUNT, target, "mount %zu (%s on %s): target%s", i, type,
                        m->target, target == -ELOOP ? " (a magic link, or too many symlinks)" : "");
        r = check_proc_target(target, type, rel);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, r,
                                    "mount %zu (%s on %s): a target in a proc file system (only "
                                    "a bind on /proc/cpuinfo, meminfo, stat, uptime, ... as "
                                    "lxcfs makes)",
                                    i, type, m->target);
        if (strcmp(type, "cgroup") == 0 || strcmp(type, "cgroup2") == 0) {
                r = mount_cgroup(m, target, why, sizeof why);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "mount %zu (%s on %s)%s", i,
                                            type, m->target, why);
                return 0;
        }
        if (mnt < 0) {
                mnt = new_fs(spec, m->type, m->source, m->data, m->flags, why, sizeof why);
                if (mnt < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, mnt, "mount %zu (%s on %s)%s",
                                            i, type, m->target, why);
                r = set_attr(mnt, 0, m->propagation, rec);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, r,
                                            "mount %zu (%s on %s): propagation", i, type,
                                            m->target);
        }
        r = attach(mnt, target);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "mount %zu (%s on %s)%s", i, type,
                                    m->target,
                                    r == -ENOTDIR ? ": a directory's mount on a file, or the "
                                                    "other way round"
                                                  : "");
        return 0;
}

/* ---- devices ----------------------------------------------------------------------- */

/* Opens the parent directory of rel in the root, made when missing; *ret_name gets
 * the leaf's name within rel. Returns the fd or -errno. */
static int open_parent(int rootfd, const char *rel, const char **ret_name)
{
        char parent[PATH_MAX];
        const char *slash = strrchr(rel, '/');

        if (!slash) {
                int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);

                *ret_name = rel;
                return fd < 0 ? negative_errno() : fd;
        }
        if ((size_t)(slash - rel) >= sizeof parent)
                return -ENAMETOOLONG;
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - rel), rel);
        *ret_name = slash + 1;
        return make_target(rootfd, parent, true);
}

/*
 * Binds the host's /dev/<name> onto the same path in the root's /dev (made when
 * missing): nosuid, noexec, not nodev. An existing symlink or directory there is an
 * error (a node never replaces what the root holds at its place).
 */
static int bind_default_device(int devfd, const char *name, SandboxError *err)
{
        char src[32];
        _cleanup_close_ int mnt = -EBADF, target = -EBADF;
        struct stat st;
        int r;

        snprintf(src, sizeof src, "/dev/%s", name);
        if (fstatat(devfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, -EEXIST,
                                            "default device %s: something else is there", src);
        } else {
                r = openat(devfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0644);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                            "default device %s: mount point", src);
                safe_close(r);
        }
        target = openat(devfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        mnt = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (target < 0 || mnt < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "default device %s",
                                    src);
        r = set_attr(mnt, MS_NOSUID | MS_NOEXEC, 0, false);
        if (r >= 0)
                r = attach(mnt, target);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "default device %s", src);
        return 0;
}

static int build_default_devices(int rootfd, SandboxError *err)
{
        static const struct {
                const char *name, *target;
        } links[] = {
                {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"},
                {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
                {"ptmx", "pts/ptmx"},
        };
        _cleanup_close_ int dev = make_target(rootfd, "dev", true);
        int r;

        if (dev < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, dev, "/dev");
        /* O_PATH cannot make entries: the directory itself, opened in the root. */
        r = openat(dev, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "/dev");
        safe_close(dev);
        dev = r;
        for (size_t i = 0; i < ELEMENTSOF(default_devices); i++) {
                r = bind_default_device(dev, default_devices[i], err);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(links); i++)
                /* What the root or a mount has there already stays (a config may
                 * bind its own /dev/ptmx). */
                if (symlinkat(links[i].target, dev, links[i].name) < 0 && errno != EEXIST)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                            "symlink /dev/%s", links[i].name);
        return 0;
}

/* One run of a user namespace's id map (user_namespaces(7)). */
typedef struct IdRun {
        uint32_t inside, host, count;
} IdRun;

/*
 * The runs of the map the sandbox's user namespace will have for uids or gids (gid),
 * into runs (at most 340, the kernel's bound): spec's explicit map, or cella's
 * (SANDBOX_UID/GID alone, and the block from host_ids_base around it), or the identity
 * when the sandbox shares the caller's user namespace. Returns how many; 0 when not
 * known here (a joined user namespace).
 */
static size_t id_runs(const SandboxSpec *spec, bool gid, IdRun *runs, size_t max)
{
        const SandboxIdMap *map = gid ? spec->gid_map : spec->uid_map;
        size_t n = gid ? spec->n_gid_map : spec->n_uid_map, k = 0;
        uint32_t own = gid ? SANDBOX_GID : SANDBOX_UID;
        bool shared = spec->namespaces != NULL;

        for (size_t i = 0; i < spec->n_namespaces; i++)
                if (spec->namespaces[i].type == CLONE_NEWUSER) {
                        if (spec->namespaces[i].fd >= 0)
                                return 0;
                        shared = false;
                }
        if (shared) {
                runs[0] = (IdRun){0, 0, UINT32_MAX};
                return 1;
        }
        if (n > 0) {
                for (size_t i = 0; i < n && k < max; i++)
                        runs[k++] = (IdRun){map[i].inside, map[i].host, map[i].count};
                return k;
        }
        runs[k++] = (IdRun){own, gid ? spec->host_gid : spec->host_uid, 1};
        if (spec->host_ids_base && max >= 3) {
                runs[k++] = (IdRun){0, spec->host_ids_base, own};
                runs[k++] = (IdRun){own + 1, spec->host_ids_base + own + 1, SANDBOX_IDS - own - 1};
        }
        return k;
}

/*
 * The host id of an id inside the sandbox's user namespace, through its map
 * (id_runs()). Returns 0 and *ret, or -EINVAL when the id is not mapped (or the user
 * namespace is a joined one, whose map the child does not know here).
 */
static int host_id(const SandboxSpec *spec, uint32_t inside, bool gid, uint32_t *ret)
{
        IdRun runs[340];
        size_t n = id_runs(spec, gid, runs, ELEMENTSOF(runs));

        for (size_t i = 0; i < n; i++)
                if (inside >= runs[i].inside && inside - runs[i].inside < runs[i].count) {
                        *ret = runs[i].host + (inside - runs[i].inside);
                        return 0;
                }
        return -EINVAL;
}

/* make_device()'s way on a nodev mount: the host's node at d's path, if it is the
 * same device, bound onto an empty file made at name in parent. */
static int bind_host_device(int parent, const char *name, const SandboxDevice *d, mode_t type,
                            size_t i, SandboxError *err)
{
        _cleanup_close_ int mnt = -EBADF, target = -EBADF;
        struct stat st;
        int r;

        mnt = open_tree(AT_FDCWD, d->path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (mnt < 0 || fstat(mnt, &st) < 0 || (st.st_mode & S_IFMT) != type ||
            st.st_rdev != makedev(d->major, d->minor))
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, -EPERM,
                                    "device %zu (%s): its directory is of the root file system, "
                                    "mounted nodev (cella applies no device cgroup), and the "
                                    "host has no such node to bind: mount a tmpfs there",
                                    i, d->path);
        r = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0644);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                    "device %zu (%s): mount point", i, d->path);
        safe_close(r);
        target = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        r = target < 0 ? negative_errno() : set_attr(mnt, MS_NOSUID | MS_NOEXEC, 0, false);
        if (r >= 0)
                r = attach(mnt, target);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "device %zu (%s): bind", i,
                                    d->path);
        return 0;
}

/*
 * One of the spec's devices (config.json linux.devices): a node of our own made with
 * mknod at its path in the root (its parent made when missing), with its mode and
 * owner (inside ids mapped to host ones: the user namespace is made after the jail).
 * Not a bind of the host's node (setting the mode or owner of a bound node would set
 * the host's), but where the directory is of the root file system, which is nodev
 * (bind_host_device()). A node there already (the root's own, a default device) is
 * replaced only when it is a node or a regular file.
 */
static int make_device(int rootfd, const SandboxSpec *spec, const SandboxDevice *d, size_t i,
                       SandboxError *err)
{
        const char *name;
        _cleanup_close_ int parent = open_parent(rootfd, relative(d->path), &name);
        mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
        mode_t mode = d->mode ? d->mode & 07777 : 0666;
        uint32_t uid, gid;
        mode_t old_umask;
        struct statvfs sv;
        struct stat st;
        int r;

        if (parent < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, parent, "device %zu (%s): parent", i,
                                    d->path);
        if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode))
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, -EEXIST,
                                            "device %zu (%s): a directory or symlink is there", i,
                                            d->path);
        }
        /* Unlink what is there (a file, a node); a mounted default device is
         * detached first through its fd (umount2 takes no fd: its /proc/self/fd
         * path, which is the fd itself, not a lookup in the root). */
        {
                _cleanup_close_ int old = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

                if (old >= 0) {
                        char p[64];

                        snprintf(p, sizeof p, "/proc/self/fd/%d", old);
                        while (umount2(p, MNT_DETACH) == 0)
                                ;
                        if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
                                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                                    "device %zu (%s): replace", i, d->path);
                }
        }
        /* Under the root's nodev (jail_build_rootfs()) a node of ours would not open:
         * the host's node of the same path and numbers is bound instead (a mount of
         * its own, not nodev), with the host's mode and owner, which are never
         * changed; without one the start fails. A fifo is no device. */
        if (type != S_IFIFO && fstatvfs(parent, &sv) == 0 && (sv.f_flag & ST_NODEV))
                return bind_host_device(parent, name, d, type, i, err);
        if (host_id(spec, d->uid, false, &uid) < 0 || host_id(spec, d->gid, true, &gid) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, -EINVAL,
                                    "device %zu (%s): owner %u:%u is not mapped to a host id", i,
                                    d->path, (unsigned)d->uid, (unsigned)d->gid);
        /* The mode as given, past the umask; the owner without following a link. */
        old_umask = umask(0);
        r = mknodat(parent, name, type | mode, makedev(d->major, d->minor));
        umask(old_umask);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                    "device %zu (%s): mknod", i, d->path);
        if (fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                    "device %zu (%s): owner", i, d->path);
        return 0;
}

/* ---- sysctls, masked and read-only paths --------------------------------------------- */

/* Whether key (dotted, or with slashes) is a namespaced sysctl cella writes; *net gets
 * whether it is a network namespace's, *ipc an ipc namespace's. */
static bool sysctl_allowed(const char *key, size_t n, bool *net, bool *ipc)
{
        static const char *const ipc_exact[] = {
                "kernel.sem",         "kernel.msgmax",          "kernel.msgmnb",
                "kernel.msgmni",      "kernel.shmall",          "kernel.shmmax",
                "kernel.shmmni",      "kernel.shm_rmid_forced", "kernel.msg_next_id",
                "kernel.sem_next_id", "kernel.shm_next_id"};

        *net = *ipc = false;
        if (n > 4 && (strncmp(key, "net.", 4) == 0 || strncmp(key, "net/", 4) == 0)) {
                *net = true;
                return true;
        }
        if (n > 10 &&
            (strncmp(key, "fs.mqueue.", 10) == 0 || strncmp(key, "fs/mqueue/", 10) == 0)) {
                *ipc = true;
                return true;
        }
        for (size_t i = 0; i < ELEMENTSOF(ipc_exact); i++) {
                size_t k = strlen(ipc_exact[i]);

                if (n == k && (strncmp(key, ipc_exact[i], k) == 0 ||
                               (strncmp(key, "kernel/", 7) == 0 &&
                                strncmp(key + 7, ipc_exact[i] + 7, k - 7) == 0))) {
                        *ipc = true;
                        return true;
                }
        }
        return false;
}

/* "net.ipv4.ip_forward" -> "sys/net/ipv4/ip_forward" (a key with a slash keeps its
 * dots: "net/ipv4/conf/eth0.100/forwarding", as sysctl(8) reads it). */
static int sysctl_path(const char *key, size_t n, char *buf, size_t size)
{
        bool slashes = memchr(key, '/', n) != NULL;

        if (n + 5 > size)
                return -ENAMETOOLONG;
        memcpy(buf, "sys/", 4);
        for (size_t i = 0; i < n; i++)
                buf[4 + i] = !slashes && key[i] == '.' ? '/' : key[i];
        buf[4 + n] = 0;
        return 0;
}

/*
 * The value to write for key. net.ipv4.ping_group_range holds a range of gids, which
 * the kernel reads in the writer's user namespace (make_kgid(current_user_ns())),
 * and the app's user namespace is made after the jail: the config's range is of the
 * container's gids (podman's "0 0" is its root group, Docker's "0 2147483647" every
 * group, as with runc, whose init writes from inside), so it is mapped to host gids:
 * the part of it the container's map holds, the run holding the app's own gid first
 * (the kernel takes one range). *skip: the map holds none of it, and the namespace
 * keeps its default ("1 0": no group may ping), which is what the range means there.
 * Into buf; returns 0 or -EINVAL (not two gids in order).
 */
static int sysctl_value(const SandboxSpec *spec, const char *key, size_t n, const char *value,
                        char *buf, size_t size, bool *skip)
{
        IdRun runs[340];
        uint32_t app = spec->ids_set ? spec->app_gid : SANDBOX_GID;
        unsigned long lo, hi;
        size_t nr, best = SIZE_MAX;
        uint64_t from = 0, to = 0;
        char *end;

        *skip = false;
        if (!(n == 25 && (strncmp(key, "net.ipv4.ping_group_range", n) == 0 ||
                          strncmp(key, "net/ipv4/ping_group_range", n) == 0))) {
                snprintf(buf, size, "%s", value);
                return 0;
        }
        errno = 0;
        lo = strtoul(value, &end, 10);
        hi = strtoul(end, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\n')
                end++;
        if (errno || *end || lo > UINT32_MAX || hi > UINT32_MAX || lo > hi)
                return -EINVAL;
        nr = id_runs(spec, true, runs, ELEMENTSOF(runs));
        for (size_t i = 0; i < nr; i++) {
                uint64_t end_inside = (uint64_t)runs[i].inside + runs[i].count - 1;
                uint64_t a = lo > runs[i].inside ? lo : runs[i].inside;
                uint64_t b = hi < end_inside ? hi : end_inside;

                if (runs[i].count == 0 || a > b)
                        continue;
                if (best == SIZE_MAX || (app >= a && app <= b)) {
                        best = i;
                        from = runs[i].host + (a - runs[i].inside);
                        to = runs[i].host + (b - runs[i].inside);
                }
        }
        if (best == SIZE_MAX) {
                *skip = true;
                return 0;
        }
        snprintf(buf, size, "%llu %llu", (unsigned long long)from, (unsigned long long)to);
        return 0;
}

/*
 * Writes each "key=value" of spec's sysctls under proc_fd's sys/ (a proc mount of the
 * sandbox; the keys were checked by rootfs_check_spec()). The file is opened now, in
 * the sandbox's network and ipc namespaces, which decide what it is (proc(5)).
 */
static int write_sysctls(const SandboxSpec *spec, int proc_fd, char *const *sysctls,
                         SandboxError *err)
{
        for (size_t i = 0; sysctls && sysctls[i]; i++) {
                const char *eq = strchr(sysctls[i], '=');
                size_t n = (size_t)(eq - sysctls[i]);
                char value[4096];
                struct open_how how = {.flags = O_WRONLY | O_CLOEXEC | O_NOCTTY,
                                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                                  RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
                _cleanup_close_ int fd = -EBADF;
                char path[PATH_MAX];
                size_t len;
                bool skip;
                int r = sysctl_value(spec, sysctls[i], n, eq + 1, value, sizeof value, &skip);

                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_NAMESPACE, r,
                                            "sysctl %.*s: \"%.32s\" is not two gids in order",
                                            (int)n, sysctls[i], eq + 1);
                if (skip)
                        continue;
                len = strlen(value);
                r = sysctl_path(sysctls[i], n, path, sizeof path);
                if (r >= 0) {
                        fd = (int)syscall(SYS_openat2, proc_fd, path, &how, sizeof how);
                        r = fd < 0 ? negative_errno() : 0;
                }
                if (r >= 0 && write(fd, value, len) != (ssize_t)len)
                        r = negative_errno();
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_NAMESPACE, r, "sysctl %.*s", (int)n,
                                            sysctls[i]);
        }
        return 0;
}

/* Hides each of paths (in the root): /dev/null over a file, an empty read-only tmpfs
 * over a directory; one missing is skipped (runc, crun). */
static int mask_paths(int rootfd, int null_fd, char *const *paths, SandboxError *err)
{
        for (size_t i = 0; paths && paths[i]; i++) {
                _cleanup_close_ int target = open_in_root(rootfd, relative(paths[i]), O_PATH),
                                    mnt = -EBADF;
                struct stat st;
                char why[160] = "";
                int r;

                if (target == -ENOENT || target == -ENOTDIR)
                        continue;
                if (target < 0 || fstat(target, &st) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT,
                                            target < 0 ? target : negative_errno(), "mask %s",
                                            paths[i]);
                if (S_ISDIR(st.st_mode))
                        mnt = new_fs(NULL, "tmpfs", "tmpfs", "size=4k,mode=0555",
                                     MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, why, sizeof why);
                else {
                        mnt = open_tree(null_fd, "",
                                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
                        if (mnt < 0)
                                mnt = negative_errno();
                        else if ((r = set_attr(mnt, MS_RDONLY | MS_NOSUID | MS_NOEXEC, 0, false)) <
                                 0)
                                return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "mask %s",
                                                    paths[i]);
                }
                r = mnt < 0 ? mnt : attach(mnt, target);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "mask %s%s", paths[i], why);
        }
        return 0;
}

/* Binds each of paths (in the root) onto itself read-only, with what is mounted
 * below it; one missing is skipped. */
static int readonly_paths(int rootfd, char *const *paths, SandboxError *err)
{
        for (size_t i = 0; paths && paths[i]; i++) {
                _cleanup_close_ int target = open_in_root(rootfd, relative(paths[i]), O_PATH),
                                    mnt = -EBADF;
                int r;

                if (target == -ENOENT || target == -ENOTDIR)
                        continue;
                if (target < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, target, "read-only %s",
                                            paths[i]);
                mnt = open_tree(target, "",
                                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
                r = mnt < 0 ? negative_errno() : set_attr(mnt, MS_RDONLY, 0, true);
                if (r >= 0)
                        r = attach(mnt, target);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "read-only %s", paths[i]);
        }
        return 0;
}

/* ---- the jail ------------------------------------------------------------------------ */

int jail_build_rootfs(const SandboxSpec *spec, SandboxError *err)
{
        const SandboxRootfs *rfs = spec->rootfs;
        _cleanup_close_ int path_fd = -EBADF, rootfd = -EBADF, proc_fd = -EBADF, null_fd = -EBADF;
        unsigned long prop = rfs->propagation ? rfs->propagation : MS_PRIVATE | MS_REC;
        struct mount_attr ma = {};
        int r;

        /* Nothing mounted from here on propagates to the host, whatever the config's
         * rootfsPropagation (set on the jail's root at the end). */
        if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                    "make / a slave mount");
        null_fd = open("/dev/null", O_PATH | O_CLOEXEC);
        if (null_fd < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "open /dev/null");

        /* The root bound onto itself (with its submounts), so that it is a mount
         * pivot_root can take; rootfd is that mount's root. */
        /* The path is looked up once: the clone goes onto what was cloned. */
        path_fd = open(rfs->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (path_fd < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "open the root %s",
                                    rfs->path);
        rootfd = open_tree(path_fd, "",
                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
        if (rootfd < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "bind the root %s",
                                    rfs->path);
        /* nodev, with what is mounted below it: cella applies no device cgroup (runc's
         * and crun's defence), so a device node the image holds anywhere (a char 1:11
         * /etc/kmsg of mode 0666 writes the host's kernel log; a node of a host disk
         * or tty) must not open. The default and spec devices are mounts or nodes of
         * their own (build_default_devices(), make_device()). */
        ma.attr_set = MOUNT_ATTR_NODEV;
        if (mount_setattr(rootfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &ma, sizeof ma) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                    "make the root %s nodev", rfs->path);
        ma = (struct mount_attr){};
        if (attach(rootfd, path_fd) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                    "attach the root at %s", rfs->path);

        for (size_t i = 0; i < rfs->n_mounts; i++) {
                r = mount_one(rootfd, spec, &rfs->mounts[i], i, err);
                if (r < 0)
                        return r;
        }
        r = build_default_devices(rootfd, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < rfs->n_devices; i++) {
                r = make_device(rootfd, spec, &rfs->devices[i], i, err);
                if (r < 0)
                        return r;
        }
        /* Through a proc of our own, never attached: the config's may be read-only,
         * or absent, and its /proc/sys is made read-only below (podman). */
        if (rfs->sysctls && rfs->sysctls[0]) {
                char why[160];

                proc_fd = new_fs(NULL, "proc", "proc", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, why,
                                 sizeof why);
                if (proc_fd < 0)
                        return sandbox_fail(err, SANDBOX_STEP_NAMESPACE, proc_fd,
                                            "proc for the sysctls%s", why);
                r = write_sysctls(spec, proc_fd, rfs->sysctls, err);
                if (r < 0)
                        return r;
        }
        r = mask_paths(rootfd, null_fd, rfs->masked_paths, err);
        if (r < 0)
                return r;
        r = readonly_paths(rootfd, rfs->readonly_paths, err);
        if (r < 0)
                return r;

        /* The app's working directory, made when missing (runc), while the root may
         * still be written. */
        if (spec->workdir && *relative(spec->workdir)) {
                _cleanup_close_ int wd = make_target(rootfd, relative(spec->workdir), true);

                if (wd < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, wd, "working directory %s",
                                            spec->workdir);
        }

        /* pivot_root(".", ".") stacks the old root under the new one; the lazy
         * unmount detaches it, so no path leads back to the host. */
        if (fchdir(rootfd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
                return sandbox_fail(err, SANDBOX_STEP_PIVOT, negative_errno(), "pivot_root into %s",
                                    rfs->path);
        if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
                return sandbox_fail(err, SANDBOX_STEP_PIVOT, negative_errno(),
                                    "detach the old root");
        if (rfs->readonly) {
                ma.attr_set = MOUNT_ATTR_RDONLY;
                if (mount_setattr(AT_FDCWD, "/", 0, &ma, sizeof ma) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_PIVOT, negative_errno(),
                                            "make / read-only");
        }
        ma = (struct mount_attr){.propagation = prop & ROOTFS_PROPAGATION};
        if (mount_setattr(AT_FDCWD, "/", (prop & MS_REC) ? AT_RECURSIVE : 0, &ma, sizeof ma) < 0)
                return sandbox_fail(err, SANDBOX_STEP_PIVOT, negative_errno(),
                                    "set the root's propagation");
        return 0;
}

/* ---- the spec's checks --------------------------------------------------------------- */

/* Whether path names something below / (not / itself, "/.", "//"). */
static bool below_root(const char *path)
{
        char buf[PATH_MAX];

        return normalize("", path, buf, sizeof buf) == 0 && *buf;
}

/* Whether path is absolute, shorter than PATH_MAX, and has no ".." component. */
static bool path_ok(const char *path)
{
        size_t n;

        if (!path || path[0] != '/' || (n = strlen(path)) >= PATH_MAX)
                return false;
        for (const char *p = path; (p = strstr(p, "..")); p += 2)
                if ((p == path || p[-1] == '/') && (p[2] == 0 || p[2] == '/'))
                        return false;
        return true;
}

/* The namespace of type the sandbox will be in: 1 a new one, 0 the caller's own (left
 * out of spec->namespaces, or joined by an fd of the caller's own), 2 another one
 * joined. */
static int ns_kind(const SandboxSpec *spec, int type)
{
        static const struct {
                int type;
                const char *name;
        } names[] = {{CLONE_NEWNET, "net"},
                     {CLONE_NEWIPC, "ipc"},
                     {CLONE_NEWNS, "mnt"},
                     {CLONE_NEWCGROUP, "cgroup"}};

        if (!spec->namespaces)
                return 1;
        for (size_t i = 0; i < spec->n_namespaces; i++) {
                struct stat a, b;
                char self[32] = "";

                if (spec->namespaces[i].type != type)
                        continue;
                if (spec->namespaces[i].fd < 0)
                        return 1;
                for (size_t k = 0; k < ELEMENTSOF(names); k++)
                        if (names[k].type == type)
                                snprintf(self, sizeof self, "/proc/self/ns/%s", names[k].name);
                if (*self && fstat(spec->namespaces[i].fd, &a) == 0 && stat(self, &b) == 0 &&
                    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
                        return 0;
                return 2;
        }
        return 0;
}

/* Counts a NULL-terminated list up to max + 1. */
static size_t count_max(char *const *v, size_t max)
{
        size_t n = 0;

        while (v && v[n] && n <= max)
                n++;
        return n;
}

int rootfs_check_spec(const SandboxSpec *spec, SandboxError *err)
{
        const SandboxRootfs *rfs = spec->rootfs;
        struct stat st, host_root;

        if (!rfs)
                return 0;
        if (!path_ok(rfs->path))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "root file system %s: not an absolute path without ..",
                                    rfs->path ?: "(none)");
        if (stat(rfs->path, &st) < 0)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, negative_errno(),
                                    "root file system %s", rfs->path);
        if (!S_ISDIR(st.st_mode))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -ENOTDIR,
                                    "root file system %s: not a directory", rfs->path);
        /* The host's own root as the container's would be no jail at all. */
        if (stat("/", &host_root) == 0 && st.st_dev == host_root.st_dev &&
            st.st_ino == host_root.st_ino)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EPERM,
                                    "root file system %s is the host's own root", rfs->path);
        if (ns_kind(spec, CLONE_NEWNS) != 1)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "a root file system needs a new mount namespace");
        if (rfs->propagation & ~(unsigned long)(ROOTFS_PROPAGATION | MS_REC) ||
            __builtin_popcountl(rfs->propagation & ROOTFS_PROPAGATION) > 1)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL, "root propagation %#lx",
                                    rfs->propagation);
        if (rfs->n_mounts > SANDBOX_ROOTFS_MAX_MOUNTS || (rfs->n_mounts && !rfs->mounts))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -E2BIG, "%zu mounts (at most %d)",
                                    rfs->n_mounts, SANDBOX_ROOTFS_MAX_MOUNTS);
        for (size_t i = 0; i < rfs->n_mounts; i++) {
                const SandboxMount *m = &rfs->mounts[i];

                if (!path_ok(m->target) || !below_root(m->target))
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "mount %zu: target %s is not an absolute path "
                                            "without .. below /",
                                            i, m->target ?: "(none)");
                if (!is_bind(m) && (!m->type || !*m->type || strlen(m->type) > 64))
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "mount %zu (on %s): no type", i, m->target);
                if (is_bind(m) && (!m->source || m->source[0] != '/'))
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "mount %zu (bind on %s): source %s is not absolute", i,
                                            m->target, m->source ?: "(none)");
                if (m->flags & ~(unsigned long)ROOTFS_MOUNT_FLAGS)
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "mount %zu (on %s): flags %#lx not supported", i,
                                            m->target,
                                            m->flags & ~(unsigned long)ROOTFS_MOUNT_FLAGS);
                if (m->propagation & ~(unsigned long)(ROOTFS_PROPAGATION | MS_REC) ||
                    __builtin_popcountl(m->propagation & ROOTFS_PROPAGATION) > 1)
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "mount %zu (on %s): propagation %#lx", i, m->target,
                                            m->propagation);
                if ((m->source && strlen(m->source) >= PATH_MAX) ||
                    (m->data && strlen(m->data) >= 4096))
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -ENAMETOOLONG,
                                            "mount %zu (on %s): source or options too long", i,
                                            m->target);
        }
        if (rfs->n_devices > SANDBOX_ROOTFS_MAX_DEVICES || (rfs->n_devices && !rfs->devices))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -E2BIG, "%zu devices (at most %d)",
                                    rfs->n_devices, SANDBOX_ROOTFS_MAX_DEVICES);
        for (size_t i = 0; i < rfs->n_devices; i++) {
                const SandboxDevice *d = &rfs->devices[i];

                if (!path_ok(d->path) || !below_root(d->path))
                        return sandbox_fail(
                                err, SANDBOX_STEP_PREPARE, -EINVAL,
                                "device %zu: path %s is not an absolute path without ..", i,
                                d->path ?: "(none)");
                if (d->type != 'c' && d->type != 'b' && d->type != 'p' && d->type != 'u')
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "device %zu (%s): type '%c' (c, u, b or p)", i, d->path,
                                            isprint((unsigned char)d->type) ? d->type : '?');
                if (d->mode & ~(mode_t)0777)
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "device %zu (%s): mode %#o has more than permission "
                                            "bits",
                                            i, d->path, (unsigned)d->mode);
        }
        if (count_max(rfs->masked_paths, SANDBOX_ROOTFS_MAX_PATHS) > SANDBOX_ROOTFS_MAX_PATHS ||
            count_max(rfs->readonly_paths, SANDBOX_ROOTFS_MAX_PATHS) > SANDBOX_ROOTFS_MAX_PATHS ||
            count_max(rfs->sysctls, SANDBOX_ROOTFS_MAX_PATHS) > SANDBOX_ROOTFS_MAX_PATHS)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -E2BIG,
                                    "more than %d masked paths, read-only paths or sysctls",
                                    SANDBOX_ROOTFS_MAX_PATHS);
        for (size_t i = 0; rfs->masked_paths && rfs->masked_paths[i]; i++)
                if (!path_ok(rfs->masked_paths[i]))
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "masked path %s is not an absolute path without ..",
                                            rfs->masked_paths[i]);
        for (size_t i = 0; rfs->readonly_paths && rfs->readonly_paths[i]; i++)
                if (!path_ok(rfs->readonly_paths[i]))
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "read-only path %s is not an absolute path without ..",
                                            rfs->readonly_paths[i]);
        for (size_t i = 0; rfs->sysctls && rfs->sysctls[i]; i++) {
                const char *s = rfs->sysctls[i], *eq = strchr(s, '=');
                size_t n = eq ? (size_t)(eq - s) : strlen(s);
                bool net, ipc, bad = !eq || n == 0 || n >= 256 || strlen(eq + 1) >= 4096;

                for (size_t k = 0; !bad && k < n; k++)
                        bad = !(isalnum((unsigned char)s[k]) || strchr("._-/", s[k])) ||
                              ((s[k] == '.' || s[k] == '/') &&
                               (k == 0 || k + 1 == n || s[k + 1] == '.' || s[k + 1] == '/'));
                if (bad)
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "sysctl %.64s: not key=value", s);
                if (!sysctl_allowed(s, n, &net, &ipc))
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EPERM,
                                            "sysctl %.*s is not namespaced (only kernel.msg*, "
                                            "kernel.sem, kernel.shm*, fs.mqueue.*, net.*)",
                                            (int)n, s);
                if (net && ns_kind(spec, CLONE_NEWNET) == 0)
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EPERM,
                                            "sysctl %.*s: the sandbox shares the caller's network "
                                            "namespace",
                                            (int)n, s);
                if (ipc && ns_kind(spec, CLONE_NEWIPC) == 0)
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EPERM,
                                            "sysctl %.*s: the sandbox shares the caller's ipc "
                                            "namespace",
                                            (int)n, s);
        }
        return 0;
}
