/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The app's /data as a file system of its own (storage.h, docs/security.md
 * "Storage"). Files in <state>/apps/<id>/:
 *
 *   data.img      the ext4 image (0600 root), sparse, sized by storage_geometry()
 *   data          where the image is mounted (nosuid, nodev, noexec), between runs too
 *   data.lock     flock()ed while the image is created, attached, mounted or grown
 *   data.loop     the loop device number last attached to the image, so a kernel in
 *                 another mount namespace reuses it instead of attaching a second
 *                 one (two loop devices on one image would be two ext4 super blocks
 *                 writing the same blocks)
 *   data.img.tmp  an image being made (removed and made again after a crash)
 *   data.old      a /data directory of an earlier cella being migrated
 *
 * Why a mount that outlives the run: mounting ext4 writes its super block with FUA
 * and unmounting it commits the journal, each a flush of the image down to the
 * host's disk; measured on the reference machine (docs/benchmarks.md), a mount costs
 * 9 ms and an unmount 12 ms (medians), four times a whole `cella run` of 5.8 ms. A
 * mount made once per boot costs each start only a clone and a check (about 30 us).
 * The loop device is attached with LO_FLAGS_AUTOCLEAR: it goes away with the last
 * mount of its file system, so nothing is left behind by a cella killed half-way
 * (its detached mount and loop fd close with it), and `umount apps/<id>/data`
 * releases everything once no app of the image runs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/tree-usage.h"
#include "supervisor/storage.h"

#ifndef EXT4_SUPER_MAGIC
#define EXT4_SUPER_MAGIC 0xEF53
#endif
/* linux/ext4.h (uapi since 6.x; defined here for older headers) */
#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif
#define LOOP_MAJOR_NR 7 /* Documentation/admin-guide/devices.txt */

#define MIB (1ull << 20)

/* How many times a free loop device is asked for when another process takes the
 * one LOOP_CTL_GET_FREE named first. */
#define LOOP_ATTACH_TRIES 16
/* How long a resize waits for the last mount of an image that was just in use to
 * go (image_resize_offline()): measured at 0 to 3 ms after an app's end. */
#define EXCL_TRIES   50
#define EXCL_WAIT_MS 5
/* Bytes of a helper's (mke2fs) output kept for the error message. */
#define TOOL_OUTPUT_MAX 2048
/* Directory depth a migration walks (deeper entries are still copied by mke2fs;
 * this bounds only the size estimate's recursion). */
#define USAGE_DEPTH_MAX 256

extern char **environ;

uint64_t storage_limit(const Manifest *m)
{
        return m->limits.storage ?: STORAGE_DEFAULT_LIMIT;
}

void storage_geometry(uint64_t limit, uint64_t inodes_min, uint64_t *ret_size,
                      unsigned *ret_journal_mib, uint64_t *ret_inodes)
{
        /* The journal: mke2fs's own default is 16 MiB to 1 GiB for these sizes;
         * app data needs less, and a small journal costs less disk once written. */
        unsigned journal = limit < 256 * MIB ? 4 : limit < 4096 * MIB ? 16 : 64;
        uint64_t inodes = MAX(limit / 8192, 256);
        uint64_t size;

        inodes = MAX(inodes, inodes_min);
        /* Files, journal, inode tables (256 bytes each), and 1/64 + 1/512 + 256 KiB
         * for the group descriptors, bitmaps, directory and extent blocks and the
         * blocks reserved for online growth: fitted so that an unprivileged writer
         * fills limit within 0.5% (limits of 8 MiB to 1 GiB, docs/benchmarks.md). */
        size = limit + journal * MIB + inodes * 256 + limit / 64 + limit / 512 + 256 * 1024;
        size = (size + STORAGE_BLOCK_SIZE - 1) / STORAGE_BLOCK_SIZE * STORAGE_BLOCK_SIZE;
        *ret_size = MAX(size, STORAGE_IMAGE_MIN);
        *ret_journal_mib = journal;
        *ret_inodes = inodes;
}

/* Paths of one app's storage files, all below app (apps/<id>). */
typedef struct Paths {
        char app[PATH_MAX - 32]; /* room for the longest name below it */
        char data[PATH_MAX];
        char img[PATH_MAX];
        char tmp[PATH_MAX];
        char old[PATH_MAX];
} Paths;

static int paths_init(Paths *p, const char *state_dir, const char *id)
{
        if (!manifest_id_is_valid(id))
                return -EINVAL;
        if (snprintf(p->app, sizeof p->app, "%s/apps/%s", state_dir, id) >= (int)sizeof p->app)
                return -ENAMETOOLONG;
        snprintf(p->data, sizeof p->data, "%s/data", p->app);
        snprintf(p->img, sizeof p->img, "%s/data.img", p->app);
        snprintf(p->tmp, sizeof p->tmp, "%s/data.img.tmp", p->app);
        snprintf(p->old, sizeof p->old, "%s/data.old", p->app);
        return 0;
}

/*
 * Runs argv[0] (an absolute path) with a minimal environment, output captured.
 * Returns its exit status (0..255; -EIO if killed) with its last output in msg, or
 * a negative errno if it could not run.
 */
static int run_tool(char *const *argv, char *msg, size_t msg_size)
{
        static char *const env[] = {"PATH=/usr/sbin:/sbin:/usr/bin:/bin", "LANG=C", NULL};
        posix_spawn_file_actions_t fa;
        int p[2], status, r;
        size_t n = 0;
        pid_t pid;

        msg[0] = 0;
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, p[1], STDERR_FILENO);
        r = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
        posix_spawn_file_actions_destroy(&fa);
        close(p[1]);
        if (r != 0) {
                close(p[0]);
                snprintf(msg, msg_size, "cannot run %s: %s", argv[0], strerror(r));
                return r == ENOENT ? -ENOENT : -r;
        }
        for (;;) {
                char buf[512];
                ssize_t k = RETRY_EINTR(read(p[0], buf, sizeof buf));

                if (k <= 0)
                        break;
                /* Keep the end: that is where the tools say what went wrong. */
                for (ssize_t i = 0; i < k; i++) {
                        if (n + 1 >= msg_size) {
                                memmove(msg, msg + msg_size / 2, n - msg_size / 2);
                                n -= msg_size / 2;
                        }
                        msg[n++] = buf[i] == '\n' ? ' ' : buf[i];
                }
        }
        msg[n] = 0;
        close(p[0]);
        if (RETRY_EINTR(waitpid(pid, &status, 0)) < 0)
                return negative_errno();
        return WIFEXITED(status) ? WEXITSTATUS(status) : -EIO;
}

/* The first of a tool's usual paths that exists (merged /usr or not). */
static const char *tool_path(const char *name, char *buf, size_t size)
{
        static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                snprintf(buf, size, "%s/%s", dirs[i], name);
                if (access(buf, X_OK) == 0)
                        return buf;
        }
        snprintf(buf, size, "/usr/sbin/%s", name);
        return buf;
}

/* Removes dfd/name and everything below it, following no symlink and not leaving
 * its file system. Returns 0 or -errno of the first failure. */
static int remove_tree_at(int dfd, const char *name, dev_t dev, unsigned depth)
{
        struct stat st;
        DIR *d;
        struct dirent *de;
        int fd, r = 0;

        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (!S_ISDIR(st.st_mode))
                return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? negative_errno() : 0;
        if (st.st_dev != dev || depth >= USAGE_DEPTH_MAX)
                return -EXDEV;
        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return negative_errno();
        }
        while ((de = readdir(d))) {
                int k;

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                k = remove_tree_at(dirfd(d), de->d_name, dev, depth + 1);
                if (k < 0 && r == 0)
                        r = k;
        }
        closedir(d);
        if (r == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                r = negative_errno();
        return r;
}

static int fsync_path(const char *path, int flags)
{
        _cleanup_close_ int fd = open(path, flags | O_CLOEXEC);

        if (fd < 0 || fsync(fd) < 0)
                return negative_errno();
        return 0;
}

/* 1 if dir has entries, 0 if it is empty, -errno. */
static int dir_has_entries(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        int r = 0;

        if (!d)
                return negative_errno();
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
                        r = 1;
                        break;
                }
        closedir(d);
        return r;
}

/*
 * Makes data.img: empty, or holding src (a migrated /data) when src is not NULL.
 * The image is made as data.img.tmp and renamed into place once complete and
 * synced, so a data.img always holds everything.
 */
static int image_create(const Paths *p, const char *id, const char *src, uint64_t limit)
{
        char tool[64], journal[32], inodes[32], blocks[32], msg[TOOL_OUTPUT_MAX];
        uint64_t size, n_inodes, want = limit;
        unsigned journal_mib;
        /* At least a block each: ext4 gives every non-empty file one. */
        TreeUsage u = {.depth_max = USAGE_DEPTH_MAX + 1, .entry_bytes_min = STORAGE_BLOCK_SIZE};
        int fd, r;

        if (src) {
                struct stat st;
                int dfd;

                /* The app may not touch what is being copied: an app of an earlier
                 * cella still running with this directory bound loses its way in. */
                if (chown(src, 0, 0) < 0 || chmod(src, 0700) < 0)
                        return log_error_errno(negative_errno(), "%s: cannot lock %s: %m", id, src);
                dfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (dfd < 0 || fstat(dfd, &st) < 0) {
                        r = negative_errno();
                        if (dfd >= 0)
                                close(dfd);
                        return log_error_errno(r, "%s: cannot read %s: %m", id, src);
                }
                u.dev = st.st_dev;
                tree_usage_walk(&u, dfd);
                /* Never smaller than what it holds, with room for ext4's own
                 * directory and extent blocks. */
                if (u.bytes + u.bytes / 16 > want) {
                        want = u.bytes + u.bytes / 16 + MIB;
                        log_warning("%s: its /data holds %llu bytes, more than limits.storage "
                                    "(%llu): the new /data keeps room for all of it",
                                    id, (unsigned long long)u.bytes, (unsigned long long)limit);
                }
        }
        storage_geometry(want, u.entries + u.entries / 4 + 64, &size, &journal_mib, &n_inodes);

        if (unlink(p->tmp) < 0 && errno != ENOENT)
                return log_error_errno(negative_errno(), "%s: cannot remove %s: %m", id, p->tmp);
        fd = open(p->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return log_error_errno(negative_errno(), "%s: cannot create %s: %m", id, p->tmp);
        r = ftruncate(fd, (off_t)size) < 0 ? negative_errno() : 0;
        close(fd);
        if (r < 0) {
                unlink(p->tmp);
                return log_error_errno(r, "%s: cannot size %s: %m", id, p->tmp);
        }

        snprintf(journal, sizeof journal, "size=%u", journal_mib);
        snprintf(inodes, sizeof inodes, "%llu", (unsigned long long)n_inodes);
        snprintf(blocks, sizeof blocks, "%llu", (unsigned long long)(size / STORAGE_BLOCK_SIZE));
        {
                /* -m 0: no blocks reserved for root (the app is never root);
                 * assume_storage_prezeroed: a new sparse file reads as zeros, so
                 * neither mke2fs nor the kernel writes the inode tables and journal
                 * out (the image takes about 200 KiB until the app writes). */
                char *argv[] = {(char *)tool_path("mke2fs", tool, sizeof tool),
                                "-q",
                                "-F",
                                "-t",
                                "ext4",
                                "-b",
                                "4096",
                                "-m",
                                "0",
                                "-I",
                                "256",
                                "-N",
                                inodes,
                                "-J",
                                journal,
                                "-L",
                                "cella-data",
                                "-E",
                                "assume_storage_prezeroed=1,root_owner=0:0",
                                src ? "-d" : (char *)p->tmp,
                                src ? (char *)src : blocks,
                                src ? (char *)p->tmp : NULL,
                                src ? blocks : NULL,
                                NULL};

                r = run_tool(argv, msg, sizeof msg);
        }
        if (r != 0) {
                unlink(p->tmp);
                log_error("%s: cannot make its /data image: %s failed%s%s", id, tool,
                          *msg ? ": " : "", msg);
                if (r == -ENOENT)
                        log_error("hint: install e2fsprogs (scripts/install-deps)");
                return r < 0 ? r : -EIO;
        }
        r = fsync_path(p->tmp, O_RDONLY);
        if (r >= 0 && rename(p->tmp, p->img) < 0)
                r = negative_errno();
        if (r >= 0)
                r = fsync_path(p->app, O_RDONLY | O_DIRECTORY);
        if (r < 0) {
                unlink(p->tmp);
                return log_error_errno(r, "%s: cannot put %s in place: %m", id, p->img);
        }
        if (src)
                log_info("%s: moved its /data (%llu entries, %llu bytes) into %s", id,
                         (unsigned long long)u.entries, (unsigned long long)u.bytes, p->img);
        return 0;
}

/*
 * Makes sure data.img exists, migrating an earlier cella's /data directory into it:
 *   1. data (a directory with entries, no image yet) is renamed to data.old;
 *   2. data.img is made from data.old (image_create: complete before it is named);
 *   3. data.old is removed.
 * A crash at any point resumes: data.old with no image redoes 2, data.old with an
 * image (complete by construction) redoes 3.
 */
static int image_ensure(const Paths *p, const char *id, uint64_t limit, bool *ret_fresh)
{
        struct stat st;
        bool have_old;
        int r;

        have_old = lstat(p->old, &st) == 0;
        if (have_old && !S_ISDIR(st.st_mode))
                return log_error_errno(-ENOTDIR, "%s: %s is not a directory", id, p->old);
        if (access(p->img, F_OK) == 0) {
                if (have_old) {
                        r = remove_tree_at(AT_FDCWD, p->old, st.st_dev, 0);
                        if (r < 0)
                                log_warning_errno(r, "%s: cannot remove %s (migrated): %m", id,
                                                  p->old);
                }
                return 0;
        }
        if (errno != ENOENT)
                return log_error_errno(negative_errno(), "%s: cannot see %s: %m", id, p->img);

        if (!have_old && lstat(p->data, &st) == 0) {
                if (!S_ISDIR(st.st_mode))
                        return log_error_errno(-ENOTDIR, "%s: %s is not a directory", id, p->data);
                r = dir_has_entries(p->data);
                if (r < 0)
                        return log_error_errno(r, "%s: cannot read %s: %m", id, p->data);
                if (r > 0) {
                        if (rename(p->data, p->old) < 0)
                                return log_error_errno(negative_errno(),
                                                       "%s: cannot move %s aside: %m", id, p->data);
                        (void)fsync_path(p->app, O_RDONLY | O_DIRECTORY);
                        have_old = true;
                }
        }
        /* mke2fs makes a lost+found; /data had none unless the app made one. */
        if (have_old) {
                _cleanup_close_ int dfd = open(p->old, O_PATH | O_DIRECTORY | O_CLOEXEC);

                *ret_fresh =
                        dfd >= 0 && faccessat(dfd, "lost+found", F_OK, AT_SYMLINK_NOFOLLOW) < 0;
        } else
                *ret_fresh = true;
        r = image_create(p, id, have_old ? p->old : NULL, limit);
        if (r < 0)
                return r;
        if (have_old && lstat(p->old, &st) == 0) {
                r = remove_tree_at(AT_FDCWD, p->old, st.st_dev, 0);
                if (r < 0)
                        log_warning_errno(r, "%s: cannot remove %s (migrated): %m", id, p->old);
        }
        return 0;
}

/* Opens /dev/loopN for the device dev; checks the node is that device. */
static int loop_open(dev_t dev, int flags)
{
        char path[32];
        struct stat st;
        int fd;

        if (major(dev) != LOOP_MAJOR_NR)
                return -ENODEV;
        snprintf(path, sizeof path, "/dev/loop%u", minor(dev));
        fd = open(path, flags | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != dev) {
                close(fd);
                return -ENODEV;
        }
        return fd;
}

/* 1 if the loop device open at lfd is backed by the file img (st), else 0. */
static int loop_backs(int lfd, const struct stat *img)
{
        struct loop_info64 li;

        if (ioctl(lfd, LOOP_GET_STATUS64, &li) < 0)
                return 0; /* ENXIO: not bound */
        return li.lo_inode == img->st_ino && li.lo_device == (uint64_t)img->st_dev;
}

/*
 * A detached clone of the mount at p->data if it is the app's image's file system;
 * -ESTALE if something else (or nothing) is mounted there. *ret_loop gets the loop
 * device (for a resize).
 */
static int clone_checked(const Paths *p, const struct stat *img, dev_t *ret_loop)
{
        _cleanup_close_ int fd = -EBADF, lfd = -EBADF;
        struct statfs sf;
        struct stat st;

        fd = open_tree(AT_FDCWD, p->data, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESTALE : negative_errno();
        if (fstatfs(fd, &sf) < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        if (sf.f_type != EXT4_SUPER_MAGIC || major(st.st_dev) != LOOP_MAJOR_NR)
                return -ESTALE;
        lfd = loop_open(st.st_dev, O_RDONLY);
        if (lfd < 0 || !loop_backs(lfd, img))
                return -ESTALE;
        if (ret_loop)
                *ret_loop = st.st_dev;
        return TAKE_FD(fd);
}

/* The loop device recorded in data.loop, opened (which keeps it from being
 * autocleared) if it is still backed by the image; else -ENOENT. */
static int loop_find(const Paths *p, const struct stat *img)
{
        char path[PATH_MAX], buf[16];
        unsigned n;
        ssize_t k;
        int fd, lfd;

        snprintf(path, sizeof path, "%s/data.loop", p->app);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -ENOENT;
        k = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (k <= 0)
                return -ENOENT;
        buf[k] = 0;
        if (sscanf(buf, "%u", &n) != 1 || n > (1u << 20))
                return -ENOENT;
        lfd = loop_open(makedev(LOOP_MAJOR_NR, n), O_RDWR);
        if (lfd < 0)
                return -ENOENT;
        if (!loop_backs(lfd, img)) {
                close(lfd);
                return -ENOENT;
        }
        return lfd;
}

static void loop_record(const Paths *p, unsigned n)
{
        char path[PATH_MAX], tmp[PATH_MAX], buf[16];
        int fd;

        snprintf(path, sizeof path, "%s/data.loop", p->app);
        snprintf(tmp, sizeof tmp, "%s/data.loop.tmp", p->app);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return;
        snprintf(buf, sizeof buf, "%u\n", n);
        if (write(fd, buf, strlen(buf)) == (ssize_t)strlen(buf))
                (void)rename(tmp, path);
        close(fd);
        unlink(tmp);
}

/* Attaches the image to a free loop device with autoclear. Returns its fd. */
static int loop_attach(const Paths *p, const char *id)
{
        _cleanup_close_ int ctl = -EBADF, img = -EBADF;
        struct loop_config c = {};
        int r = -EBUSY;

        img = open(p->img, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (img < 0)
                return log_error_errno(negative_errno(), "%s: cannot open %s: %m", id, p->img);
        ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0)
                return log_error_errno(negative_errno(),
                                       "%s: its /data is %s, but /dev/loop-control cannot be "
                                       "opened to attach it: %m",
                                       id, p->img);
        c.fd = (uint32_t)img;
        c.block_size = STORAGE_BLOCK_SIZE;
        c.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        memcpy(c.info.lo_file_name, p->img, MIN(strlen(p->img), sizeof c.info.lo_file_name - 1));
        for (int i = 0; i < LOOP_ATTACH_TRIES; i++) {
                int n = ioctl(ctl, LOOP_CTL_GET_FREE), lfd;

                if (n < 0)
                        return log_error_errno(negative_errno(), "%s: no free loop device: %m", id);
                lfd = loop_open(makedev(LOOP_MAJOR_NR, (unsigned)n), O_RDWR);
                if (lfd < 0) {
                        r = lfd;
                        continue;
                }
                if (ioctl(lfd, LOOP_CONFIGURE, &c) == 0) {
                        loop_record(p, (unsigned)n);
                        return lfd;
                }
                r = negative_errno();
                close(lfd);
                if (r != -EBUSY) /* EBUSY: taken by another process meanwhile */
                        break;
        }
        return log_error_errno(r, "%s: cannot attach %s to a loop device: %m", id, p->img);
}

/* Mounts the file system of the loop device open at lfd at p->data. fresh: the
 * image was just made or checked (an empty lost+found goes: /data starts empty, as
 * it did as a directory; e2fsck makes it again when it needs one). */
static int mount_data(const Paths *p, const char *id, int lfd, bool fresh)
{
        _cleanup_close_ int fs = -EBADF, mnt = -EBADF;
        char source[32];
        struct stat st;

        if (fstat(lfd, &st) < 0)
                return negative_errno();
        snprintf(source, sizeof source, "/dev/loop%u", minor(st.st_rdev));
        fs = fsopen("ext4", FSOPEN_CLOEXEC);
        if (fs < 0)
                return log_error_errno(negative_errno(), "%s: cannot mount %s: ext4: %m", id,
                                       p->img);
        /* discard: space the app frees goes back to the host (the loop device
         * punches holes in the image); errors=remount-ro: a damaged file system
         * stops taking writes instead of spreading the damage. */
        if (fsconfig(fs, FSCONFIG_SET_STRING, "source", source, 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_FLAG, "discard", NULL, 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "errors", "remount-ro", 0) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return log_error_errno(negative_errno(), "%s: cannot mount %s (%s): %m", id, p->img,
                                       source);
        mnt = fsmount(fs, FSMOUNT_CLOEXEC,
                      MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (mnt < 0)
                return log_error_errno(negative_errno(), "%s: cannot mount %s: %m", id, p->img);
        /* The root is the app's alone (mke2fs makes it 0755): no other host user
         * may look in while it is mounted on the host. Its owner is set by the
         * caller (state_app_data_dir()). */
        {
                _cleanup_close_ int root = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                if (root < 0 || fchmod(root, 0700) < 0)
                        return log_error_errno(negative_errno(),
                                               "%s: cannot set the mode of %s's root: %m", id,
                                               p->img);
                if (fresh)
                        (void)unlinkat(root, "lost+found", AT_REMOVEDIR);
        }
        if (mkdir(p->data, 0700) < 0 && errno != EEXIST)
                return log_error_errno(negative_errno(), "%s: cannot make %s: %m", id, p->data);
        if (move_mount(mnt, "", AT_FDCWD, p->data, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return log_error_errno(negative_errno(), "%s: cannot mount %s on %s: %m", id,
                                       p->img, p->data);
        return 0;
}

/* Grows the mounted image to size bytes: the file, the loop device, then ext4
 * online (EXT4_IOC_RESIZE_FS, as resize2fs does for a mounted file system). */
static int image_grow(const Paths *p, const char *id, dev_t loop, uint64_t size)
{
        _cleanup_close_ int img = -EBADF, lfd = -EBADF, root = -EBADF;
        uint64_t blocks = size / STORAGE_BLOCK_SIZE;
        struct stat st, old;
        int r;

        img = open(p->img, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        lfd = loop_open(loop, O_RDONLY);
        root = open(p->data, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (img < 0 || lfd < 0 || root < 0 || fstat(root, &st) < 0 || st.st_dev != loop ||
            fstat(img, &old) < 0)
                return log_error_errno(-ESTALE, "%s: cannot grow %s: it moved", id, p->img);
        if (ftruncate(img, (off_t)size) < 0 || ioctl(lfd, LOOP_SET_CAPACITY, 0) < 0 ||
            ioctl(root, EXT4_IOC_RESIZE_FS, &blocks) < 0) {
                r = negative_errno();
                /* Back to the file system's size: a bigger file would pass for a grown
                 * file system from now on (the next start's checks read the file's
                 * size), and the offline resize the caller tries next starts from it. */
                if (ftruncate(img, old.st_size) < 0 || ioctl(lfd, LOOP_SET_CAPACITY, 0) < 0)
                        log_warning_errno(negative_errno(),
                                          "%s: cannot set %s back to %lld bytes: %m", id, p->img,
                                          (long long)old.st_size);
                return log_debug_errno(r, "%s: cannot grow %s online: %m", id, p->img);
        }
        log_info("%s: /data grown to %llu bytes", id, (unsigned long long)size);
        return 0;
}

/*
 * Resizes the image to size bytes while no kernel has it mounted: e2fsck -f (which
 * resize2fs insists on), then resize2fs, as an administrator would. For a smaller
 * limit (ext4 shrinks only offline) and for a larger one where growing online is
 * refused (EXT4_IOC_RESIZE_FS needs CAP_SYS_RESOURCE). The caller holds the lock and
 * has unmounted apps/<id>/data; lfd is the loop device still attached, or -1.
 * Returns 1 if resized, 0 if left as it is (in use elsewhere, or what /data holds
 * does not fit: logged), or a negative errno.
 */
static int image_resize_offline(const Paths *p, const char *id, int lfd, uint64_t size,
                                uint64_t old_size)
{
        char tool[64], blocks[32], msg[TOOL_OUTPUT_MAX];
        int r;

        if (lfd >= 0) {
                /* Its super block holds the device open exclusively while any mount
                 * of it lives (an app of another kernel running): then not now. */
                char path[32];
                struct stat st;
                int ex;

                if (fstat(lfd, &st) < 0)
                        return negative_errno();
                snprintf(path, sizeof path, "/dev/loop%u", minor(st.st_rdev));
                /* A mount namespace that just lost its last process (an app that
                 * just ended) may let go of its mount a few ms later: Linux frees
                 * it asynchronously and says nothing when it has. */
                for (int i = 0; i < EXCL_TRIES; i++) {
                        ex = open(path, O_RDONLY | O_EXCL | O_CLOEXEC);
                        if (ex >= 0 || errno != EBUSY)
                                break;
                        (void)poll(NULL, 0, EXCL_WAIT_MS);
                }
                if (ex < 0) {
                        log_warning("%s: /data is in use elsewhere (an app of another cella "
                                    "runs): it keeps %llu bytes until it is not",
                                    id, (unsigned long long)old_size);
                        return 0;
                }
                close(ex);
        }
        {
                char *argv[] = {(char *)tool_path("e2fsck", tool, sizeof tool), "-f", "-p",
                                (char *)p->img, NULL};

                r = run_tool(argv, msg, sizeof msg);
        }
        if (r < 0 || r > 1) /* 1: errors corrected */
                return log_error_errno(-EIO, "%s: %s finds %s damaged: %s", id, tool, p->img, msg);
        if (size > old_size && truncate(p->img, (off_t)size) < 0)
                return log_error_errno(negative_errno(), "%s: cannot grow %s: %m", id, p->img);
        snprintf(blocks, sizeof blocks, "%llu", (unsigned long long)(size / STORAGE_BLOCK_SIZE));
        {
                char *argv[] = {(char *)tool_path("resize2fs", tool, sizeof tool), (char *)p->img,
                                blocks, NULL};

                r = run_tool(argv, msg, sizeof msg);
        }
        if (r != 0) {
                if (size > old_size)
                        (void)truncate(p->img, (off_t)old_size);
                log_warning("%s: /data keeps its %llu bytes: %s to %llu bytes failed: %s", id,
                            (unsigned long long)old_size, tool, (unsigned long long)size, msg);
                return 0;
        }
        if (size < old_size && truncate(p->img, (off_t)size) < 0)
                return log_error_errno(negative_errno(), "%s: cannot shrink %s: %m", id, p->img);
        log_info("%s: /data resized from %llu to %llu bytes", id, (unsigned long long)old_size,
                 (unsigned long long)size);
        return 1;
}

/* The slow path of storage_prepare(), under the lock. */
static int prepare_locked(const Paths *p, const char *id, uint64_t limit)
{
        _cleanup_close_ int lfd = -EBADF;
        uint64_t size, inodes;
        unsigned journal;
        struct stat img, st, app;
        bool fresh = false, grow, shrink;
        dev_t loop = 0;
        int fd, r;

        /* No loop devices to use (missing, as in many containers, or not ours to
         * use): a new app keeps a plain directory (the caller warns). */
        if (access(p->img, F_OK) < 0 && errno == ENOENT && access("/dev/loop-control", W_OK) < 0)
                return -EOPNOTSUPP;
        r = image_ensure(p, id, limit, &fresh);
        if (r < 0)
                return r;
        if (stat(p->img, &img) < 0)
                return log_error_errno(negative_errno(), "%s: cannot see %s: %m", id, p->img);
        storage_geometry(limit, 0, &size, &journal, &inodes);
        grow = (uint64_t)img.st_size < size;
        /* Some slack, so a limit a little below the size (a migrated /data that held
         * more than its limit) does not cost an e2fsck at every mount. */
        shrink = (uint64_t)img.st_size > size + size / 8 + MIB;

        fd = clone_checked(p, &img, &loop);
        if (fd >= 0) {
                close(fd);
                if (grow && image_grow(p, id, loop, size) >= 0)
                        return 0;
                if (!grow && !shrink)
                        return 0;
                /* Offline, then: no app of this kernel runs now (the caller is about
                 * to start it), and image_resize_offline() checks for others. */
                if (umount2(p->data, UMOUNT_NOFOLLOW) < 0) {
                        log_warning_errno(negative_errno(),
                                          "%s: /data keeps its %llu bytes: cannot unmount it to "
                                          "resize: %m",
                                          id, (unsigned long long)img.st_size);
                        return 0;
                }
        } else if (fd != -ESTALE)
                return log_error_errno(fd, "%s: %s: %m", id, p->data);

        /* Not mounted here: something else on data (a leftover directory an earlier
         * cella filled after the migration) is never hidden. */
        if (lstat(p->data, &st) == 0 && stat(p->app, &app) == 0 && st.st_dev == app.st_dev) {
                r = dir_has_entries(p->data);
                if (r != 0)
                        return log_error_errno(r < 0 ? r : -ENOTEMPTY,
                                               "%s: %s is not mounted but holds files: move "
                                               "them into the app's /data by hand, then "
                                               "remove them",
                                               id, p->data);
        }
        lfd = loop_find(p, &img);
        if (grow || shrink) {
                r = image_resize_offline(p, id, lfd, size, (uint64_t)img.st_size);
                if (r < 0)
                        return r;
                /* e2fsck makes a lost+found if there is none: /data had none. */
                fresh = r > 0;
                if (r > 0 && lfd >= 0) {
                        /* Unused (checked): closing it lets autoclear detach it, so
                         * the image is attached anew at its new size. */
                        lfd = safe_close(lfd);
                        if (stat(p->img, &img) < 0)
                                return negative_errno();
                        lfd = loop_find(p, &img);
                }
        }
        if (lfd >= 0)
                (void)ioctl(lfd, LOOP_SET_CAPACITY, 0); /* the image's size, if it changed */
        else
                lfd = loop_attach(p, id);
        if (lfd < 0)
                return lfd;
        r = mount_data(p, id, lfd, fresh);
        if (r < 0)
                return r;
        return 0;
}

int storage_prepare(const char *state_dir, const char *id, uint64_t limit, int *ret_fd)
{
        _cleanup_close_ int lock = -EBADF;
        char lock_path[PATH_MAX];
        uint64_t size, inodes;
        unsigned journal;
        struct stat img;
        Paths p;
        int fd, r;

        r = paths_init(&p, state_dir, id);
        if (r < 0)
                return r;
        /* Fast path: mounted, and big enough for the limit. */
        storage_geometry(limit, 0, &size, &journal, &inodes);
        if (stat(p.img, &img) == 0 && (uint64_t)img.st_size >= size &&
            (uint64_t)img.st_size <= size + size / 8 + MIB) {
                fd = clone_checked(&p, &img, NULL);
                if (fd >= 0) {
                        *ret_fd = fd;
                        return 0;
                }
        }

        if (mkdir(p.app, 0711) < 0 && errno != EEXIST)
                return log_error_errno(negative_errno(), "%s: cannot make %s: %m", id, p.app);
        snprintf(lock_path, sizeof lock_path, "%s/data.lock", p.app);
        lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lock < 0)
                return log_error_errno(negative_errno(), "%s: cannot open %s: %m", id, lock_path);
        if (RETRY_EINTR(flock(lock, LOCK_EX)) < 0)
                return log_error_errno(negative_errno(), "%s: cannot lock %s: %m", id, lock_path);
        r = prepare_locked(&p, id, limit);
        if (r < 0)
                return r;
        if (stat(p.img, &img) < 0)
                return negative_errno();
        fd = clone_checked(&p, &img, NULL);
        if (fd < 0)
                return log_error_errno(fd, "%s: %s is not its image's mount: %m", id, p.data);
        *ret_fd = fd;
        return 0;
}

int storage_release(const char *state_dir, const char *id)
{
        _cleanup_close_ int lock = -EBADF;
        char lock_path[PATH_MAX];
        struct stat img;
        Paths p;
        int fd, r;

        r = paths_init(&p, state_dir, id);
        if (r < 0)
                return r;
        snprintf(lock_path, sizeof lock_path, "%s/data.lock", p.app);
        lock = open(lock_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (lock < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (RETRY_EINTR(flock(lock, LOCK_EX)) < 0)
                return negative_errno();
        if (stat(p.img, &img) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        /* Only the image's own mount is taken down: whatever else sits on data (a
         * plain directory, something mounted by hand) is left to the caller. */
        fd = clone_checked(&p, &img, NULL);
        if (fd == -ESTALE)
                return 0;
        if (fd < 0)
                return fd;
        close(fd);
        if (umount2(p.data, UMOUNT_NOFOLLOW) < 0) {
                if (errno != EBUSY)
                        return negative_errno();
                /* A file of it still open on the host: detach now, the file system goes
                 * (and autoclear frees its loop device) once the last user closes. */
                if (umount2(p.data, UMOUNT_NOFOLLOW | MNT_DETACH) < 0)
                        return negative_errno();
        }
        return 1;
}
