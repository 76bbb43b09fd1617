/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's cgroup layout and its tag (daemon.h, docs/daemon.md "Cgroups"). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/statedir.h"
#include "daemon/daemon.h"
#include "keeper/keeper.h"

/* "d<dev>i<ino>" of st (hexadecimal), the state directory's identity. */
static void dir_identity(const struct stat *st, char *buf, size_t size)
{
        snprintf(buf, size, "d%llxi%llx", (unsigned long long)st->st_dev,
                 (unsigned long long)st->st_ino);
}

/* A tag as cgroup_manager_set_owner() takes it: 1 to DAEMON_TAG_MAX ASCII letters
 * and digits, the first a letter. */
static bool tag_valid(const char *t, size_t n)
{
        if (n == 0 || n > DAEMON_TAG_MAX || !isalpha((unsigned char)t[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isascii((unsigned char)t[i]) || !isalnum((unsigned char)t[i]))
                        return false;
        return true;
}

/*
 * Reads DAEMON_TAG_FILE in the directory dir_fd: "<tag> <identity>\n". Returns 1
 * with the tag in buf (size > DAEMON_TAG_MAX) and the identity it was made for in
 * id (size > 64), 0 if there is no such file, -EBADMSG for a file not so shaped,
 * or another -errno.
 */
static int tag_read(int dir_fd, const char *path, char *buf, size_t size, char *id, size_t id_size)
{
        _cleanup_close_ int fd = openat(dir_fd, DAEMON_TAG_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        char line[DAEMON_TAG_MAX + 80], *sp, *nl;
        struct stat st;
        ssize_t k;

        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        /* As every file cellad believes in its state directory (security.md, "The
         * state directory"): a regular file, the caller's, not writable by others;
         * path: NULL to say nothing of one that is not. */
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return path ? log_error_errno(-EPERM, "%s: not a regular file", path) : -EPERM;
        if (path ? owned_check(path, &st) < 0 : st.st_uid != geteuid() || (st.st_mode & 022))
                return -EPERM;
        k = read(fd, line, sizeof line - 1);
        if (k < 0)
                return negative_errno();
        line[k] = 0;
        sp = strchr(line, ' ');
        nl = strchr(line, '\n');
        if (!sp || !nl || nl[1] != 0 || !tag_valid(line, (size_t)(sp - line)) ||
            (size_t)(sp - line) >= size || (size_t)(nl - sp - 1) >= id_size ||
            !tag_valid(sp + 1, (size_t)(nl - sp - 1)))
                return -EBADMSG;
        memcpy(buf, line, (size_t)(sp - line));
        buf[sp - line] = 0;
        memcpy(id, sp + 1, (size_t)(nl - sp - 1));
        id[nl - sp - 1] = 0;
        return 1;
}

/* Writes "<tag> <id>\n" to dir_fd/DAEMON_TAG_FILE, atomically (a new file renamed
 * over it, synced first). Returns 0 or -errno. */
static int tag_write(int dir_fd, const char *tag, const char *id)
{
        static const char tmp[] = DAEMON_TAG_FILE ".new";
        char line[DAEMON_TAG_MAX + 80];
        int n = snprintf(line, sizeof line, "%s %s\n", tag, id), fd, r = 0;

        (void)unlinkat(dir_fd, tmp, 0);
        fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return negative_errno();
        if (write(fd, line, (size_t)n) != n || fsync(fd) < 0)
                r = errno ? negative_errno() : -EIO;
        safe_close(fd);
        if (r >= 0 && renameat(dir_fd, tmp, dir_fd, DAEMON_TAG_FILE) < 0)
                r = negative_errno();
        if (r < 0)
                (void)unlinkat(dir_fd, tmp, 0);
        return r;
}

int daemon_tag_get(int state_fd, const char *state_dir, char *buf, size_t size)
{
        char tag[DAEMON_TAG_MAX + 1], id[64], want[64];
        struct stat st;
        uint64_t rnd;
        int r;

        if (size <= DAEMON_TAG_MAX)
                return -EINVAL;
        if (fstat(state_fd, &st) < 0)
                return log_error_errno(negative_errno(), "%s: %m", state_dir);
        dir_identity(&st, want, sizeof want);
        {
                char path[PATH_MAX];

                snprintf(path, sizeof path, "%s/%s", state_dir, DAEMON_TAG_FILE);
                r = tag_read(state_fd, path, tag, sizeof tag, id, sizeof id);
        }
        if (r == -EPERM)
                return r; /* said */
        if (r == -EBADMSG)
                return log_error_errno(r,
                                       "%s/%s: not a cgroup tag (expected one line \"<tag> "
                                       "d<dev>i<ino>\", the tag 1 to %d letters and digits); "
                                       "remove it and cellad makes a new one, but apps still "
                                       "running under the old tag are then not adopted",
                                       state_dir, DAEMON_TAG_FILE, DAEMON_TAG_MAX);
        if (r < 0)
                return log_error_errno(r, "cannot read %s/%s: %m", state_dir, DAEMON_TAG_FILE);
        if (r > 0 && strcmp(id, want) == 0) {
                strcpy(buf, tag);
                return 0;
        }
        if (r > 0)
                /* A copy of another state directory (its tag file came along): a tag
                 * of its own, or the two would share their cgroups. */
                log_info("%s/%s was made for another directory (%s, this is %s): a new tag",
                         state_dir, DAEMON_TAG_FILE, id, want);
        else if (faccessat(state_fd, KEEPER_LOCK, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                /* A cellad of before the tag file ran here: its keeper may hold apps
                 * whose leaves, base and scope carry the old tag, the directory's
                 * identity. Kept, so that they are adopted. */
                strcpy(tag, want);
                goto write;
        }
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
                return log_error_errno(negative_errno(), "cannot make a cgroup tag: getrandom: %m");
        snprintf(tag, sizeof tag, "r%016llx", (unsigned long long)rnd);
write:
        r = tag_write(state_fd, tag, want);
        if (r < 0)
                return log_error_errno(r, "cannot write %s/%s: %m", state_dir, DAEMON_TAG_FILE);
        strcpy(buf, tag);
        return 0;
}

bool daemon_tag_alive(const char *tag, const char *state_dir)
{
        _cleanup_close_ int fd = -EBADF;
        char got[DAEMON_TAG_MAX + 1], id[64], want[64];
        struct stat st;
        int r;

        if (!state_dir || state_dir[0] != '/')
                return false;
        fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                /* Gone (or no directory there any more); a failure of another kind
                 * (EACCES, EMFILE) keeps the base. */
                return !(errno == ENOENT || errno == ENOTDIR);
        if (fstat(fd, &st) < 0)
                return true;
        dir_identity(&st, want, sizeof want);
        r = tag_read(fd, NULL, got, sizeof got, id, sizeof id);
        if (r == 0 || r == -EBADMSG)
                return false;
        if (r < 0)
                return true;
        return strcmp(got, tag) == 0 && strcmp(id, want) == 0;
}

/* Whether a legacy tag: "d<hex>i<hex>". */
static bool tag_legacy(const char *t)
{
        size_t n;

        if (t[0] != 'd')
                return false;
        n = strspn(t + 1, "0123456789abcdef");
        if (n == 0 || t[1 + n] != 'i')
                return false;
        t += 2 + n;
        n = strspn(t, "0123456789abcdef");
        return n > 0 && t[n] == 0;
}

/* CgroupBaseGoneFn of the daemon's sweep (daemon_cgroup_setup()). */
static bool base_gone(const char *tag, const char *mark, void *userdata)
{
        (void)userdata;
        if (mark)
                return !daemon_tag_alive(tag, mark);
        /* A base of a cellad of before the tag file: its state directory cannot be
         * named (the tag is only its device and inode). Empty, it holds nothing a
         * cellad needs: one starting on that directory makes it again. A base of
         * today's naming without its mark is being made (the mark follows the
         * mkdir), or lies on a file system without trusted xattrs: kept. */
        return tag_legacy(tag);
}

int daemon_cgroup_setup(const char *fs_root, CgroupMode mode, const char *state_dir,
                        const char *tag, CgroupManager **ret)
{
        char base[sizeof DAEMON_CGROUP_BASE + DAEMON_TAG_MAX + 2];
        _cleanup_free_ char *mark = realpath(state_dir, NULL);
        CgroupManager *m = NULL;
        int r;

        if (!tag || !tag_valid(tag, strlen(tag)))
                return log_error_errno(-EINVAL, "cannot set up the cgroups: bad tag");
        if (!mark)
                return log_error_errno(negative_errno(), "%s: %m", state_dir);
        snprintf(base, sizeof base, "%s-%s", DAEMON_CGROUP_BASE, tag);
        r = cgroup_manager_new(fs_root, mode, NULL, &m);
        if (r < 0)
                return log_error_errno(r, "no usable cgroup hierarchy under %s: %m", fs_root);
        r = cgroup_manager_enter_marked(m, DAEMON_CGROUP_LEAF, base, mark);
        if (r < 0) {
                log_error_errno(r,
                                "cannot move cellad into a cgroup leaf '%s' of its own under %s "
                                "(%s): %m; under systemd the unit needs Delegate=yes",
                                DAEMON_CGROUP_LEAF, fs_root, cgroup_manager_ops(m)->name);
                cgroup_manager_free(m);
                return r;
        }
        /* The bases other cellads left beside ours (a SIGKILLed one never started
         * again on its state directory): each once it is empty and its state
         * directory gone. */
        r = cgroup_manager_sweep_bases(m, DAEMON_CGROUP_LEAF, DAEMON_CGROUP_BASE "-", base_gone,
                                       NULL);
        if (r > 0)
                log_info("removed %d empty cgroup base(s) of cellads whose state directory is "
                         "gone",
                         r);
        else if (r < 0)
                log_warning_errno(r, "cannot sweep the cgroup bases of other cellads: %m");
        *ret = m;
        return 0;
}
