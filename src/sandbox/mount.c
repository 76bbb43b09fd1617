/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The jail (docs/design.md section 5 step 2): a tmpfs root holding read-only binds of
 * the runtime, the app's own binds, a private /tmp, a fresh /proc, a minimal /dev
 * and no /sys; then pivot_root and the old root detached.
 *
 * Every source is cloned with open_tree(OPEN_TREE_CLONE) and given its final
 * attributes with mount_setattr() *before* anything is mounted, so no source path
 * is ever looked up again once the jail exists (no symlink or mount race between
 * check and use), and read-only/nosuid/nodev apply atomically and recursively,
 * where the old bind-then-remount dance leaves a window and misses submounts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/size.h"
#include "sandbox/sandbox-internal.h"

#define JAIL_MAX_TREES 64

/* Runtime paths; a host symlink (merged /usr) is recreated as the same symlink. */
static const char *const runtime_paths[] = {
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
};

/*
 * The /etc subset a dynamically linked program, a shell, python3 and sqlite3 need.
 * Identity files (passwd, group, hosts, hostname, nsswitch.conf) are written by
 * cella instead, so nothing about the host's users leaks in.
 */
static const char *const etc_paths[] = {
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/alternatives",
        "/etc/localtime",
        "/etc/timezone",
        "/etc/ssl",
        "/etc/ca-certificates",
        "/etc/protocols",
        "/etc/services",
        "/etc/mime.types",
        "/etc/os-release",
        "/etc/python3",
        "/etc/python3.11",
        "/etc/inputrc",
        "/etc/terminfo",
        "/etc/profile",
        "/etc/bash.bashrc",
        "/etc/debian_version",
};

/* Device nodes bound from the host's /dev. */
static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom"};

/*
 * /proc entries that reveal or touch the host beyond the app's business: masked
 * with /dev/null (files: they read as empty) or an empty read-only tmpfs
 * (directories). The OCI runtimes' defaults (runc/crun "maskedPaths", Docker's
 * default spec: kcore, keys, timer_list, sched_debug, latency_stats, timer_stats,
 * acpi, scsi, asound, firmware), and past them the host-wide files others may
 * read that no program an app runs needs (procps, python3 and its test suite,
 * sqlite3, lua, coreutils):
 *   cmdline, config.gz, bootconfig: how the host was built and booted;
 *   interrupts, softirqs, schedstat, irq: per-CPU counters of the host, a side
 *     channel on other tenants' activity (keystroke timing from interrupts);
 *   zoneinfo, buddyinfo, modules, kallsyms: the host's memory layout, modules
 *     and symbols (kallsyms and modules show real kernel addresses to anyone
 *     when kernel.kptr_restrict is 0 and kernel.perf_event_paranoid <= 1: a
 *     KASLR leak that depends on host settings);
 *   locks: every file lock of the host, with host pids and inode numbers;
 *   partitions, diskstats, swaps, mdstat, fs, bus, driver: the host's devices
 *     and their I/O counters;
 *   pressure: the host's PSI figures;
 *   sys/kernel/random/boot_id: the host's boot id, a stable identifier of the
 *     host (/etc/machine-id is not bound in), which would let apps tell they share
 *     a host (masked on top of the read-only bind of sys). Not the last one:
 *     /proc/stat's btime, kept for ps, tells it too (docs/security.md).
 * Each mask is a mount (about 12 us each, docs/security.md), so what the app
 * cannot open anyway is not masked: a file only root may read or write (kcore,
 * timer_list, slabinfo, vmallocinfo, pagetypeinfo, kpage*: mode 0400; mtrr, which
 * asks for CAP_SYS_ADMIN at open), since the app is never host root and holds no
 * capability. Left visible on purpose: iomem, ioports (addresses read as zero
 * without CAP_SYS_ADMIN, whatever the sysctls), key-users (only the users of
 * the app's own user namespace);
 * and what real programs read: stat (glibc's get_nprocs falls back to it without
 * /sys; ps reads btime), meminfo (free, ps), cpuinfo, uptime, vmstat, version,
 * filesystems, mounts, self, net (the app's own network namespace), sysvipc (its
 * own ipc namespace). loadavg is replaced (proc_loadavg below).
 */
static const char *const proc_masked[] = {
        "kcore",
        "keys",
        "timer_list",
        "sched_debug",
        "latency_stats",
        "timer_stats",
        "acpi",
        "scsi",
        "asound",
        "firmware",
        "cmdline",
        "config.gz",
        "bootconfig",
        "interrupts",
        "softirqs",
        "schedstat",
        "irq",
        "zoneinfo",
        "buddyinfo",
        "modules",
        "locks",
        "partitions",
        "diskstats",
        "swaps",
        "mdstat",
        "fs",
        "bus",
        "driver",
        "pressure",
        "kallsyms",
        "sys/kernel/random/boot_id",
};
static const char *const proc_readonly[] = {"sys", "sysrq-trigger"};

/*
 * /proc/loadavg, as the app sees it: no load and one process (the format of
 * fs/proc/loadavg.c: three loads, running/total tasks, last pid). The host's
 * figures count every process of the host, and its last pid tells when any
 * process on the host forks; uptime, top and Python's os.getloadavg() only need
 * the file to parse.
 */
static const char proc_loadavg[] = "0.00 0.00 0.00 1/1 1\n";

typedef struct Tree {
        int fd;           /* detached mount from open_tree */
        char target[256]; /* path inside the jail, relative (no leading '/') */
        bool is_dir;
        uint64_t attr; /* the mount attributes it was cloned with */
} Tree;

/*
 * How often a file's clone is made again when attaching it fails with ENOENT: a
 * file replaced by rename(2) between its clone and its attach (ldconfig rewrites
 * /etc/ld.so.cache so, package upgrades every file they install) leaves the
 * clone's root an unlinked dentry, which move_mount() refuses with ENOENT; the
 * path then names the new file, which a new clone takes. Each failed try means the
 * file was replaced once more since the last clone, so the bound is a count of
 * replacements, not of time: a start survives JAIL_ATTACH_TRIES - 1 replacements
 * of one file during its attach however slow the machine is, and a host process
 * that replaces the file again and again (more often than a start can clone and
 * attach it) fails the start with EBUSY, "replaced N times while being bound",
 * after JAIL_ATTACH_TRIES cheap tries (an open_tree, a mount_setattr, a
 * move_mount), never a hang. bwrap binds by path with one mount(2), its lookup
 * and graft in the one call, so its window is inside the kernel; ours spans
 * three calls, and a start must not fail for a file replaced now and then.
 * Binding the parent folder instead would show the app the file's neighbours,
 * and a copy would not be the host's file. JAIL_ATTACH_TRIES is in
 * sandbox-internal.h, for test-sandbox.
 */

typedef struct Jail {
        Tree trees[JAIL_MAX_TREES];
        size_t n_trees;
        int null_fd; /* O_PATH of the host's /dev/null, cloned for masks */
} Jail;

static void jail_done_trees(Jail *j)
{
        for (size_t i = 0; i < j->n_trees; i++)
                safe_close(j->trees[i].fd);
        j->n_trees = 0;
}

static void jail_done(Jail *j)
{
        jail_done_trees(j);
        j->null_fd = safe_close(j->null_fd);
}

static uint64_t mount_attr_of(unsigned flags)
{
        uint64_t a = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

        if (!(flags & SANDBOX_BIND_RW))
                a |= MOUNT_ATTR_RDONLY;
        if (flags & SANDBOX_BIND_NOEXEC)
                a |= MOUNT_ATTR_NOEXEC;
        return a;
}

/* Clones the mount tree at dfd/path and sets attr on all of it. Returns the fd. */
static int clone_tree(int dfd, const char *path, uint64_t attr, bool recursive)
{
        struct mount_attr ma = {.attr_set = attr};
        unsigned rec = recursive ? AT_RECURSIVE : 0;
        _cleanup_close_ int fd = -EBADF;

        fd = open_tree(dfd, path,
                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec | (*path ? 0 : AT_EMPTY_PATH));
        if (fd < 0)
                return negative_errno();
        if (mount_setattr(fd, "", AT_EMPTY_PATH | rec, &ma, sizeof ma) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

/* source: resolved against dfd (AT_FDCWD for an absolute path; "" for dfd itself);
 * name: the source's absolute path, for messages. */
static int jail_add_tree_at(Jail *j, int dfd, const char *source, const char *name,
                            const char *target, unsigned flags, SandboxError *err)
{
        struct stat st;
        Tree *t;
        int fd;

        if (j->n_trees >= JAIL_MAX_TREES)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, -E2BIG, "more than %d binds",
                                    JAIL_MAX_TREES);
        if (target[0] != '/' || strstr(target, "..") || strlen(target) >= sizeof(t->target))
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, -EINVAL, "bad bind target %s", target);
        if (fstatat(dfd, source, &st, *source ? 0 : AT_EMPTY_PATH) < 0) {
                if (errno == ENOENT && (flags & SANDBOX_BIND_OPTIONAL))
                        return 0;
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "bind %s", name);
        }
        fd = clone_tree(dfd, source, mount_attr_of(flags), true);
        if (fd < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, fd, "clone mount of %s", name);
        t = &j->trees[j->n_trees++];
        t->fd = fd;
        t->is_dir = S_ISDIR(st.st_mode);
        t->attr = mount_attr_of(flags);
        snprintf(t->target, sizeof t->target, "%s", target + 1);
        return 0;
}

static int jail_add_tree(Jail *j, const char *source, const char *target, unsigned flags,
                         SandboxError *err)
{
        return jail_add_tree_at(j, AT_FDCWD, source, source, target, flags, err);
}

static int attach_tree(int rootfd, int fd, const char *rel, bool is_dir);

/*
 * Attaches the caller's detached mount b->fd (SANDBOX_BIND_FD: an app's /data file
 * system) at b->target with b->flags' attributes. It must be a directory's mount.
 */
static int attach_mount_fd(int rootfd, const SandboxBind *b, SandboxError *err)
{
        /* Private: a clone of a shared host mount (the state dir under a shared /)
         * would join its peer group, and nothing mounted in the jail may propagate
         * back to the host, nor the host's mounts into the jail. */
        struct mount_attr ma = {.attr_set = mount_attr_of(b->flags), .propagation = MS_PRIVATE};
        struct stat st;
        int r;

        if (b->target[0] != '/' || strstr(b->target, "..") || strlen(b->target) >= PATH_MAX)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, -EINVAL, "bad bind target %s",
                                    b->target);
        if (b->fd < 0 || fstat(b->fd, &st) < 0 || !S_ISDIR(st.st_mode))
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, b->fd < 0 ? -EBADF : -ENOTDIR,
                                    "mount of %s", b->source ?: b->target);
        if (mount_setattr(b->fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &ma, sizeof ma) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                    "set the attributes of %s", b->source ?: b->target);
        r = attach_tree(rootfd, b->fd, b->target + 1, true);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "mount %s", b->target);
        return 0;
}

/* mkdir -p of a relative path below dfd. */
static int mkdir_below(int dfd, const char *rel, mode_t mode)
{
        char p[PATH_MAX];

        if (snprintf(p, sizeof p, "%s", rel) >= (int)sizeof p)
                return -ENAMETOOLONG;
        for (char *s = p; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (*p && mkdirat(dfd, p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdirat(dfd, p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

/* Creates the mount point for t (a directory, or an empty file) below rootfd. */
static int make_mount_point(int rootfd, const char *rel, bool is_dir)
{
        const char *slash = strrchr(rel, '/');
        int r;

        if (slash) {
                char parent[PATH_MAX];

                snprintf(parent, sizeof parent, "%.*s", (int)(slash - rel), rel);
                r = mkdir_below(rootfd, parent, 0755);
                if (r < 0)
                        return r;
        }
        if (is_dir)
                return mkdir_below(rootfd, rel, 0755);
        r = openat(rootfd, rel, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0444);
        if (r < 0)
                return errno == EEXIST ? 0 : negative_errno();
        close(r);
        return 0;
}

static int attach_tree(int rootfd, int fd, const char *rel, bool is_dir)
{
        int r = make_mount_point(rootfd, rel, is_dir);

        if (r < 0)
                return r;
        if (move_mount(fd, "", rootfd, rel, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return negative_errno();
        return 0;
}

void (*sandbox_test_before_file_attach)(const char *target) = NULL;

/*
 * Attaches t below rootfd; a file replaced since its clone (ENOENT) is cloned
 * again from dfd/source, its path in the host's view, and attached, up to
 * JAIL_ATTACH_TRIES times. Returns 0, -EBUSY when every try met a file replaced
 * since its clone, or another -errno (-ENOENT: the source is gone).
 */
static int attach_tree_fresh(int rootfd, Tree *t, int dfd, const char *source)
{
        for (unsigned i = 1;; i++) {
                int r, fd;

                if (!t->is_dir && sandbox_test_before_file_attach)
                        sandbox_test_before_file_attach(t->target);
                r = attach_tree(rootfd, t->fd, t->target, t->is_dir);
                if (r != -ENOENT || t->is_dir)
                        return r;
                if (i >= JAIL_ATTACH_TRIES)
                        return -EBUSY;
                fd = clone_tree(dfd, source, t->attr, true);
                if (fd < 0)
                        return fd;
                safe_close(t->fd);
                t->fd = fd;
        }
}

/* The error of a failed attach_tree_fresh() of t, from source (host path). */
static int attach_fail(SandboxError *err, int r, const Tree *t, const char *source)
{
        if (r == -EBUSY)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, r,
                                    "mount /%s: %s was replaced %d times while being bound",
                                    t->target, source, JAIL_ATTACH_TRIES);
        return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "mount /%s", t->target);
}

/* A new detached tmpfs with the given options and mount attributes. */
static int new_tmpfs_inodes(uint64_t size, const char *mode, uint64_t attr, uint64_t inodes)
{
        _cleanup_close_ int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        char buf[32], ibuf[24];
        int fd;

        if (fs < 0)
                return negative_errno();
        snprintf(ibuf, sizeof ibuf, "%llu", (unsigned long long)inodes);
        if (fsconfig(fs, FSCONFIG_SET_STRING, "size", format_size(size, buf, sizeof buf), 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "mode", mode, 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", ibuf, 0) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return negative_errno();
        fd = fsmount(fs, FSMOUNT_CLOEXEC, (unsigned)attr);
        return fd < 0 ? negative_errno() : fd;
}

static int new_tmpfs(uint64_t size, const char *mode, uint64_t attr)
{
        return new_tmpfs_inodes(size, mode, attr, 4096);
}

static int write_file_below(int dfd, const char *rel, const char *content)
{
        _cleanup_close_ int fd =
                openat(dfd, rel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
        size_t n = strlen(content);

        if (fd < 0)
                return negative_errno();
        if (write(fd, content, n) != (ssize_t)n)
                return -EIO;
        return 0;
}

/* Collects the runtime and /etc sources, recreating host symlinks as symlinks. */
static int add_host_paths(Jail *j, int rootfd, const char *const *paths, size_t n,
                          SandboxError *err)
{
        for (size_t i = 0; i < n; i++) {
                char link[PATH_MAX];
                struct stat st;
                ssize_t k;
                int r;

                if (lstat(paths[i], &st) < 0)
                        continue; /* every one of these is optional */
                if (!S_ISLNK(st.st_mode)) {
                        r = jail_add_tree(j, paths[i], paths[i], SANDBOX_BIND_OPTIONAL, err);
                        if (r < 0)
                                return r;
                        continue;
                }
                k = readlink(paths[i], link, sizeof link - 1);
                if (k < 0)
                        continue;
                link[k] = 0;
                r = mkdir_below(rootfd, "etc", 0755);
                if (r >= 0 && symlinkat(link, rootfd, paths[i] + 1) < 0 && errno != EEXIST)
                        r = negative_errno();
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "symlink %s", paths[i]);
        }
        return 0;
}

/*
 * A devpts instance of the sandbox's own (every mount of devpts is a new instance
 * since Linux 4.7): ptys the app opens (python's pty module, script, expect) are
 * invisible to the host and to other apps, and theirs to it. ptmxmode=0666 so the
 * app's uid can open /dev/ptmx; gid=SANDBOX_GID, mode=0620 as glibc's grantpt
 * expects with a tty group. Not nodev: the ptys are device nodes.
 */
static int new_devpts(void)
{
        _cleanup_close_ int fs = fsopen("devpts", FSOPEN_CLOEXEC);
        char gid[16];
        int fd;

        snprintf(gid, sizeof gid, "%d", SANDBOX_GID);
        if (fs < 0)
                return negative_errno();
        if (fsconfig(fs, FSCONFIG_SET_STRING, "ptmxmode", "0666", 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0620", 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "gid", gid, 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "max", "64", 0) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return negative_errno();
        fd = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

/* /dev: the five device nodes, the links, the sandbox's devpts; /dev/shm is mounted
 * by build_tmp(). */
static int build_dev(int rootfd, SandboxError *err)
{
        static const struct {
                const char *name, *target;
        } links[] = {
                {"dev/fd", "/proc/self/fd"},       {"dev/stdin", "/proc/self/fd/0"},
                {"dev/stdout", "/proc/self/fd/1"}, {"dev/stderr", "/proc/self/fd/2"},
                {"dev/ptmx", "pts/ptmx"},
        };
        _cleanup_close_ int dev = -EBADF, pts = -EBADF;
        int r;

        /* The device nodes are binds of the host's: a tmpfs made by root in a new
         * namespace could hold mknod'ed nodes, and we want exactly these five. */
        /* nodev on /dev itself is fine: each node below is its own bind mount
         * and carries its own flags. */
        dev = new_tmpfs(64 * 1024, "0755",
                        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (dev < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, dev, "tmpfs for /dev");
        for (size_t i = 0; i < ELEMENTSOF(dev_nodes); i++) {
                char src[64];
                _cleanup_close_ int fd = -EBADF;

                snprintf(src, sizeof src, "/dev/%s", dev_nodes[i]);
                fd = clone_tree(AT_FDCWD, src, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false);
                if (fd < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, fd, "bind %s", src);
                r = attach_tree(dev, fd, dev_nodes[i], false);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "mount %s", src);
        }
        if (mkdirat(dev, "shm", 01777) < 0 || mkdirat(dev, "pts", 0755) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "mkdir in /dev");
        r = attach_tree(rootfd, dev, "dev", true);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "mount /dev");
        for (size_t i = 0; i < ELEMENTSOF(links); i++)
                if (symlinkat(links[i].target, rootfd, links[i].name) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                            "symlink /%s", links[i].name);
        pts = new_devpts();
        if (pts < 0 || move_mount(pts, "", rootfd, "dev/pts", MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, pts < 0 ? pts : negative_errno(),
                                    "mount /dev/pts");
        return 0;
}

/*
 * /tmp and /dev/shm: two directories of one tmpfs of spec->tmp_size bytes (and
 * 8192 inodes), so the app's limits.tmp bounds both together: a file in /dev/shm
 * (shm_open, sem_open, multiprocessing's locks) takes room from /tmp. The tmpfs
 * is attached at a staging point of the root, its two directories are cloned to
 * /tmp and /dev/shm with their own attributes, and the staging mount is detached
 * (a clone straight from the detached tmpfs needs Linux 6.15's open_tree on
 * detached mounts). base: the host path rootfd is attached at.
 *
 * /tmp allows exec, as bwrap, flatpak and Docker do: test suites, configure
 * scripts and build tools run what they write there (CPython's test_shutil and
 * test_subprocess fail otherwise), and noexec would stop nothing an interpreter or
 * memfd_create cannot do anyway. /dev/shm and /data stay noexec: a dropped binary
 * cannot persist and run at the next start.
 */
static int build_tmp(int rootfd, const char *base, const SandboxSpec *spec, SandboxError *err)
{
        static const char stage[] = ".tmpfs";
        static const struct {
                const char *dir, *target;
                uint64_t attr;
        } parts[] = {
                {".tmpfs/tmp", "tmp", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV},
                {".tmpfs/shm", "dev/shm", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC},
        };
        _cleanup_close_ int fs = -EBADF;
        char staged[PATH_MAX];
        int r = 0;

        fs = new_tmpfs_inodes(spec->tmp_size, "0755", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 8192);
        if (fs < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, fs, "tmpfs for /tmp and /dev/shm");
        r = attach_tree(rootfd, fs, stage, true);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "mount the /tmp tmpfs");
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(parts); i++) {
                _cleanup_close_ int m = -EBADF;

                /* mkdirat's mode passes through the umask: set 1777 explicitly. */
                if (mkdirat(rootfd, parts[i].dir, 0700) < 0 ||
                    fchmodat(rootfd, parts[i].dir, 01777, 0) < 0) {
                        r = sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "mkdir /%s",
                                         parts[i].target);
                        break;
                }
                m = clone_tree(rootfd, parts[i].dir, parts[i].attr, false);
                r = m < 0 ? m : attach_tree(rootfd, m, parts[i].target, true);
                if (r < 0)
                        r = sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "mount /%s", parts[i].target);
        }
        snprintf(staged, sizeof staged, "%s/%s", base, stage);
        if (umount2(staged, MNT_DETACH) < 0 || unlinkat(rootfd, stage, AT_REMOVEDIR) < 0) {
                if (r >= 0)
                        r = sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                         "detach the /tmp staging mount");
        }
        return r < 0 ? r : 0;
}

static int build_proc(int rootfd, int null_fd, SandboxError *err)
{
        _cleanup_close_ int fs = -EBADF, proc = -EBADF;
        const char *empty_dir = NULL; /* the first directory masked */

        /* hidepid=invisible: in its own pid namespace the app only has its own
         * processes anyway; this also hides init's, which run as the same uid but
         * are none of the app's business. Mounted while the host's /proc is still
         * in our namespace: Linux refuses a new proc mount in a namespace with no
         * fully visible one (mount_too_revealing). */
        fs = fsopen("proc", FSOPEN_CLOEXEC);
        if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "hidepid", "invisible", 0) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "create proc");
        proc = fsmount(fs, FSMOUNT_CLOEXEC,
                       MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (proc < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "mount proc");
        if (attach_tree(rootfd, proc, "proc", true) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "mount /proc");

        /* Read-only binds first: a mask below one (boot_id under sys) then sits on
         * top of it, with its own attributes. */
        for (size_t i = 0; i < ELEMENTSOF(proc_readonly); i++) {
                _cleanup_close_ int m = -EBADF;

                if (faccessat(proc, proc_readonly[i], F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                m = clone_tree(proc, proc_readonly[i],
                               MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                       MOUNT_ATTR_NOEXEC,
                               true);
                if (m < 0 || move_mount(m, "", proc, proc_readonly[i], MOVE_MOUNT_F_EMPTY_PATH) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, m < 0 ? m : negative_errno(),
                                            "read-only /proc/%s", proc_readonly[i]);
        }
        for (size_t i = 0; i < ELEMENTSOF(proc_masked); i++) {
                _cleanup_close_ int m = -EBADF;
                struct stat st;

                if (fstatat(proc, proc_masked[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                /* Root's alone (0400, 0200): the app cannot open it, no mount needed. */
                if (!S_ISDIR(st.st_mode) && !(st.st_mode & (S_IROTH | S_IWOTH)))
                        continue;
                if (!S_ISDIR(st.st_mode))
                        m = clone_tree(null_fd, "",
                                       MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                                       false);
                else if (!empty_dir)
                        /* One empty tmpfs for every directory: the first is new, the
                         * others are clones of it (cheaper than a tmpfs each). */
                        m = new_tmpfs(4096, "0555",
                                      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                              MOUNT_ATTR_NOEXEC);
                else
                        m = clone_tree(proc, empty_dir,
                                       MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                               MOUNT_ATTR_NOEXEC,
                                       false);
                if (m < 0 || move_mount(m, "", proc, proc_masked[i], MOVE_MOUNT_F_EMPTY_PATH) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, m < 0 ? m : negative_errno(),
                                            "mask /proc/%s", proc_masked[i]);
                if (S_ISDIR(st.st_mode) && !empty_dir)
                        empty_dir = proc_masked[i];
        }
        /* loadavg: a file of the jail's root, bound over the host's, then unlinked
         * (the bind keeps it); read-only like the root it came from. */
        if (faccessat(proc, "loadavg", F_OK, 0) == 0) {
                _cleanup_close_ int m = -EBADF;
                int r = write_file_below(rootfd, ".loadavg", proc_loadavg);

                if (r >= 0) {
                        m = clone_tree(rootfd, ".loadavg",
                                       MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                               MOUNT_ATTR_NOEXEC,
                                       false);
                        r = m < 0 ? m
                            : move_mount(m, "", proc, "loadavg", MOVE_MOUNT_F_EMPTY_PATH) < 0
                                    ? negative_errno()
                                    : 0;
                }
                (void)unlinkat(rootfd, ".loadavg", 0);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "replace /proc/loadavg");
        }
        return 0;
}

/* Whether a bind of spec's lands on target (an absolute jail path). */
static bool spec_binds_at(const SandboxSpec *spec, const char *target)
{
        for (size_t i = 0; i < spec->n_binds; i++)
                if (spec->binds[i].target && strcmp(spec->binds[i].target, target) == 0)
                        return true;
        return false;
}

/* The jail's identity files; one the spec binds a file of its own over (an app network
 * member's /etc/hosts, which the kernel keeps up to date) is left to that bind. */
static int write_identity(int rootfd, const SandboxSpec *spec, SandboxError *err)
{
        char passwd[512], group[256], hosts[256], hostname[SANDBOX_HOSTNAME_MAX + 2];
        const struct {
                const char *name, *content;
        } files[] = {
                {"etc/passwd", passwd},
                {"etc/group", group},
                {"etc/hosts", hosts},
                {"etc/hostname", hostname},
                {"etc/nsswitch.conf", spec->resolv_conf
                                              ? "passwd: files\ngroup: files\nshadow: files\n"
                                                "hosts: files dns\nnetworks: files\n"
                                                "protocols: files\nservices: files\n"
                                              : "passwd: files\ngroup: files\nshadow: files\n"
                                                "hosts: files\nnetworks: files\n"
                                                "protocols: files\nservices: files\n"},
                {"etc/resolv.conf", spec->resolv_conf},
        };

        snprintf(passwd, sizeof passwd,
                 "root:x:0:0:root:/:/usr/sbin/nologin\n"
                 "app:x:%d:%d:%.64s:/data:/bin/sh\n"
                 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                 SANDBOX_UID, SANDBOX_GID, spec->hostname);
        snprintf(group, sizeof group, "root:x:0:\napp:x:%d:\nnogroup:x:65534:\n", SANDBOX_GID);
        snprintf(hosts, sizeof hosts, "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%.64s\n",
                 spec->hostname);
        snprintf(hostname, sizeof hostname, "%.64s\n", spec->hostname);

        if (mkdir_below(rootfd, "etc", 0755) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "mkdir /etc");
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                char target[32];
                int r;

                if (!files[i].content)
                        continue; /* no resolv.conf */
                snprintf(target, sizeof target, "/%s", files[i].name);
                if (spec_binds_at(spec, target))
                        continue;
                r = write_file_below(rootfd, files[i].name, files[i].content);

                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_MOUNT, r, "write /%s", files[i].name);
        }
        return 0;
}

int jail_skeleton(size_t n_binds, JailSkeleton *ret, SandboxError *err)
{
        static const char base[] = JAIL_BASE;
        _cleanup_close_ int rootfd = -EBADF, basefd = -EBADF;
        Jail j = {.null_fd = -EBADF};
        int r;

        *ret = (JailSkeleton){.rootfd = -EBADF, .basefd = -EBADF};
        /* Nothing we mount may propagate back to the host; host unmounts still
         * propagate in (bubblewrap does the same). */
        if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(),
                                    "make / a slave mount");

        /* One inode per mount point (and its parents) of the spec's binds on top of
         * the runtime's: a packed Lua host binds two folders per app. */
        rootfd = new_tmpfs_inodes(1024 * 1024, "0755", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                                  4096 + 2 * (uint64_t)n_binds);
        if (rootfd < 0)
                return sandbox_fail(err, SANDBOX_STEP_MOUNT, rootfd, "tmpfs for the root");

        /* 1. Every source, resolved now, in the host's view. */
        j.null_fd = open("/dev/null", O_PATH | O_CLOEXEC);
        if (j.null_fd < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "open /dev/null");
                goto out;
        }
        r = add_host_paths(&j, rootfd, runtime_paths, ELEMENTSOF(runtime_paths), err);
        if (r < 0)
                goto out;
        r = add_host_paths(&j, rootfd, etc_paths, ELEMENTSOF(etc_paths), err);
        if (r < 0)
                goto out;

        /* 2. The root, attached so it can become the root, then populated. It hides
         * the host's base: binds from under base are resolved from basefd, the
         * host's base itself, which a walk from it does not leave for the mount. */
        basefd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (basefd < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "open %s", base);
                goto out;
        }
        if (move_mount(rootfd, "", AT_FDCWD, base, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_MOUNT, negative_errno(), "attach the root at %s",
                                 base);
                goto out;
        }
        for (size_t i = 0; i < j.n_trees; i++) {
                char source[sizeof j.trees[i].target + 1];

                /* A host path's target is its own path (add_host_paths). */
                snprintf(source, sizeof source, "/%s", j.trees[i].target);
                r = attach_tree_fresh(rootfd, &j.trees[i], AT_FDCWD, source);
                if (r < 0) {
                        r = attach_fail(err, r, &j.trees[i], source);
                        goto out;
                }
        }
        /* /dev and /proc hold nothing of any app: part of the skeleton a warm
         * sandbox has ready (pool.c). No spec bind targets either. */
        r = build_dev(rootfd, err);
        if (r < 0)
                goto out;
        r = build_proc(rootfd, j.null_fd, err);
        if (r < 0)
                goto out;
        ret->rootfd = TAKE_FD(rootfd);
        ret->basefd = TAKE_FD(basefd);
        r = 0;
out:
        jail_done(&j);
        return r;
}

int jail_finish(const SandboxSpec *spec, JailSkeleton *sk, SandboxError *err)
{
        static const char base[] = JAIL_BASE;
        struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
        _cleanup_close_ int rootfd = TAKE_FD(sk->rootfd), basefd = TAKE_FD(sk->basefd);
        Jail j = {.null_fd = -EBADF};
        int r;

        /* The spec's binds one at a time (resolved in the host's view all the same:
         * nothing is pivoted yet), so a spec may hold thousands of them (a packed
         * Lua host: two per app) without as many fds open at once. */
        for (size_t i = 0; i < spec->n_binds; i++) {
                Tree *t;

                const char *src = spec->binds[i].source;
                size_t bl = strlen(base);
                bool under = strncmp(src, base, bl) == 0 && (src[bl] == '/' || !src[bl]);
                const char *rel = under ? src + bl + (src[bl] == '/') : src;

                jail_done_trees(&j);
                if (spec->binds[i].flags & SANDBOX_BIND_FD) {
                        r = attach_mount_fd(rootfd, &spec->binds[i], err);
                        if (r < 0)
                                goto out;
                        continue;
                }
                r = jail_add_tree_at(&j, under ? basefd : AT_FDCWD, rel, src, spec->binds[i].target,
                                     spec->binds[i].flags, err);
                if (r < 0)
                        goto out;
                if (j.n_trees == 0) /* optional and missing */
                        continue;
                t = &j.trees[0];
                r = attach_tree_fresh(rootfd, t, under ? basefd : AT_FDCWD, rel);
                if (r < 0) {
                        r = attach_fail(err, r, t, src);
                        goto out;
                }
        }
        r = write_identity(rootfd, spec, err);
        if (r < 0)
                goto out;
        r = build_tmp(rootfd, base, spec, err);
        if (r < 0)
                goto out;

        /* 3. pivot_root(".", ".") stacks the old root under the new one at "/";
         * the lazy unmount then detaches it, so no path leads back to the host. */
        if (fchdir(rootfd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_PIVOT, negative_errno(), "pivot_root");
                goto out;
        }
        if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_PIVOT, negative_errno(), "detach the old root");
                goto out;
        }
        if (mount_setattr(AT_FDCWD, "/", 0, &ro, sizeof ro) < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_PIVOT, negative_errno(), "make / read-only");
                goto out;
        }
        r = 0;
out:
        jail_done(&j);
        return r;
}

int jail_build(const SandboxSpec *spec, SandboxError *err)
{
        JailSkeleton sk;
        int r = jail_skeleton(spec->n_binds, &sk, err);

        if (r < 0)
                return r;
        return jail_finish(spec, &sk, err);
}
