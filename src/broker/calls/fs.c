/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fs calls (proto/cella.proto "fs", docs/protocol.md "Files beneath a granted
 * root"): user files beneath a granted root (fs.open, fs.list, fs.stat, fs.mkdir,
 * fs.rename, fs.unlink).
 *
 * A granted root is a host directory an app holds fs.read:<root> / fs.write:<root>
 * for. The rules, each a boundary of its own:
 *
 * - Rights. fs.open: READ needs fs.read:<root>; WRITE, CREATE, TRUNCATE and APPEND
 *   need fs.write:<root> (O_RDONLY|O_TRUNC truncates on Linux, and a create is a
 *   write whatever the access mode); both need both. fs.list and fs.stat need
 *   fs.read:<root>; fs.mkdir, fs.rename and fs.unlink need fs.write:<root>.
 * - Nothing the app gets can name anything outside the root. fs.open passes regular
 *   files only, with exactly the access mode asked: never a directory (from a
 *   directory fd, openat(fd, "../.."), fchdir() and a relative connect() or bind()
 *   reach the whole host file system with the app's host uid), never an O_PATH fd.
 *   Directories are listed, made, renamed and removed by the kernel, which resolves
 *   the path beneath the root on every call.
 * - Resolution: openat2(root, path, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
 *   RESOLVE_NO_XDEV), root being the root's clone ("Mounts" below). Every step,
 *   ".." and symlinks included, must stay beneath the root and on its mount: an
 *   absolute path, "../x", an absolute symlink, a relative one leading out, or a
 *   mount point crossed fail with EXDEV; procfs magic links (self/root, self/fd/N)
 *   with ELOOP. Symlinks that stay inside are followed, the last component too,
 *   except where a call acts on the link itself (fs.unlink, fs.rename, a listing,
 *   fs.stat with no_follow): they are the user's own links, and RESOLVE_BENEATH
 *   confines them. openat2's EAGAIN (a rename raced the lookup)
 *   is retried FS_OPEN_RETRIES times. Calls that change a directory (mkdir, rename,
 *   unlink, a create) resolve the parent so and act on one plain name in it.
 * - Identity. The kernel runs as root; these calls must not. Every file system call
 *   they make runs on one worker thread that acts as the user who owns the root:
 *   that user's fsuid, fsgid and supplementary groups (raw setfsuid/setfsgid/
 *   setgroups, which change the calling thread only; glibc's setgroups() would
 *   change every thread), with no capability in its effective or permitted set but
 *   CAP_SETUID and CAP_SETGID, which switch identities and give no power over files
 *   (capabilities(7)). So no call opens, reads, creates, truncates, renames or
 *   removes what that user could not: a root-only 0600 file inside a user's root
 *   is EACCES, a 0444 file is not truncated. A root owned by uid 0 is acted on as
 *   the overflow user (/proc/sys/kernel/overflowuid, "nobody"): root is not a user
 *   whose powers an app may borrow; default roots are created owned by that user.
 *   A kernel that is not root acts as itself (it has no one else's rights to lend).
 * - Types. fs.open resolves to an O_PATH fd, fstat()s it, refuses anything but a
 *   regular file (a directory EISDIR, a FIFO, socket or device ENXIO) and only then
 *   opens that very file for real, through /proc/thread-self/fd/N: a FIFO or a
 *   device is never opened, so no open has side effects and none blocks. Opens are
 *   O_NONBLOCK (cleared before the fd is passed), so a file another program holds a
 *   lease on is EAGAIN rather than a wait of lease-break-time on the loop.
 * - Roots. BrokerOptions.roots names "name=/host/path"; any other root name that
 *   passes the catalogue's syntax (docs/capabilities.md) is <state_dir>/roots/<name>,
 *   created 0700 on first use. A name that fails the syntax can never be granted:
 *   EPERM. Each root directory is opened O_PATH once per app and kept
 *   (FS_ROOTS_CACHED of them), with its owner's identity, so a path is resolved
 *   from the directory first found even if the host path is renamed later.
 * - Created files and directories belong to the root's owner (the worker's fsuid;
 *   group: the owner's primary group, or the directory's if it is set-group-ID).
 *   A file's permission bits are mode & 0666 (no execute bits on files an app drops
 *   in the user's folders), a directory's mode & 0777, masked by the kernel's umask.
 *   A plain CREATE is tried as CREATE|EXCLUSIVE first, then as an open of the
 *   existing file, so the audit record knows whether it created the file.
 * - Mounts. Nothing is resolved on the host's mount of the root: every call
 *   resolves beneath a detached clone of the root folder (root_mount():
 *   open_tree(OPEN_TREE_CLONE | AT_RECURSIVE), nosuid, nodev, noexec), read-only
 *   for fs.list, fs.stat and an fs.open that does not write, writable for the
 *   rest. Kept per app and root, made on the kernel's loop (CAP_SYS_ADMIN, which
 *   the worker lacks), made again when the kernel's mount table changed
 *   (mounts_generation()), so a mount made on the host beneath the root later
 *   is EXDEV as any other rather than showing the folder it covers.
 *
 * What a passed regular-file fd allows (docs/security.md): it lives on the clone.
 * The app may reopen it through its own /proc/self/fd/N, checked against its own
 * host uid, i.e. the file's "other" permission bits, and against the clone's
 * mount: a file passed read-only is never written through a reopen (EROFS,
 * whatever its bits), no passed file is executed or mapped executable (noexec),
 * and readlink() of /proc/self/fd/N names its path beneath the root alone (a
 * detached mount has no path in any namespace). What remains: a file passed
 * write-only that the app's uid may read by its bits ("other" r) can be read back
 * through a reopen; no mount attribute forbids reads. linkat() of it into the
 * app's own folders fails (another mount: EXDEV); fchmod/fchown fail (EROFS on
 * the read-only clone, EPERM otherwise: the app does not own it).
 *
 * A revoked fs.read/fs.write cannot take back an fd already passed: the app keeps
 * what it opened for as long as it keeps it open, as a POSIX process keeps an fd
 * after a chmod. Revocation stops every later call at once. Android is, as far
 * as we can tell, no different: a ParcelFileDescriptor opened through a content URI
 * is a plain kernel fd, and revokeUriPermission() documents no effect on
 * descriptors already handed out (we found no statement either way in its docs, so
 * this is our reading, not a quote).
 *
 * fs.usage is in usage.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/macro.h"
#include "broker/broker-internal.h"

#define FS_ROOT_NAME_MAX 63u   /* proto: root 1..63 bytes */
#define FS_PATH_MAX      4095u /* proto: path 1..4095 bytes */
#define FS_ROOTS_CACHED  16u   /* root dir fds kept per app */
#define FS_OPEN_RETRIES  8u    /* openat2 EAGAIN (a rename raced the lookup) */

/* fs.list's page: at most this many entries, and entries whose names and per-entry
 * overhead add up to at most FS_LIST_BYTES_MAX, so a reply stays well under the
 * 65536-byte body (an entry packs to its name + at most 30 bytes: tags, lengths, a
 * type, two varints of at most 10 bytes). */
#define FS_LIST_ENTRIES_MAX 256u
#define FS_LIST_BYTES_MAX   49152u
#define FS_LIST_ENTRY_COST  32u
#define FS_LIST_SCAN_MAX    1024u  /* directory entries one page reads at most, kept or not */
#define FS_NAME_MAX         255u   /* NAME_MAX of Linux file systems */
#define FS_GROUPS_MAX       65536u /* NGROUPS_MAX of Linux */

#define FS_RESOLVE (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

#define FS_READ        CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_READ
#define FS_WRITE       CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_WRITE
#define FS_CREATE      CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_CREATE
#define FS_EXCLUSIVE   CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_EXCLUSIVE
#define FS_TRUNCATE    CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_TRUNCATE
#define FS_APPEND      CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_APPEND
#define FS_FLAGS_ALL   (FS_READ | FS_WRITE | FS_CREATE | FS_EXCLUSIVE | FS_TRUNCATE | FS_APPEND)
#define FS_NEEDS_WRITE (FS_WRITE | FS_CREATE | FS_TRUNCATE | FS_APPEND)

#define FS_RENAME_NOREPLACE CELLA__V1__FS_RENAME_FLAG__FS_RENAME_FLAG_NOREPLACE
#define FS_RENAME_EXCHANGE  CELLA__V1__FS_RENAME_FLAG__FS_RENAME_FLAG_EXCHANGE

/* Who the worker acts as for one root. */
typedef struct FsCred {
        uid_t uid;
        gid_t gid;
        gid_t *groups; /* supplementary groups, n_groups of them */
        size_t n_groups;
} FsCred;

typedef struct FsRoot {
        char name[CAPABILITY_ROOT_MAX + 1];
        int fd;           /* O_PATH|O_DIRECTORY, on the host's mount */
        int mnt[2];       /* detached clones of fd (root_mount()): [0] read-only, [1]
                           * writable; -EBADF until first used */
        uint64_t mnt_gen; /* mounts_generation() when mnt[] were made */
        FsCred cred;
} FsRoot;

/* Per app (BROKER_SLOT_FS). Kept as a handle that depends on no right, so the
 * core closes it when the app detaches. */
typedef struct FsState {
        BrokerHandle handle;
        FsRoot roots[FS_ROOTS_CACHED];
        unsigned n;
} FsState;

static void fs_root_done(FsRoot *r)
{
        safe_close(r->fd);
        r->fd = -EBADF;
        for (unsigned i = 0; i < ELEMENTSOF(r->mnt); i++) {
                safe_close(r->mnt[i]);
                r->mnt[i] = -EBADF;
        }
        free(r->cred.groups);
        r->cred.groups = NULL;
}

static void fs_state_close(BrokerHandle *h)
{
        FsState *s = (FsState *)((char *)h - offsetof(FsState, handle));

        for (unsigned i = 0; i < s->n; i++)
                fs_root_done(&s->roots[i]);
        broker_app_set_slot(h->app, BROKER_SLOT_FS, NULL);
        free(s);
}

/* ---- the worker: file system calls as the root's owner ------------------------------ */

typedef struct FsJob {
        const FsCred *cred;
        int (*fn)(void *arg);
        void *arg;
        int result;
} FsJob;

static struct {
        pthread_mutex_t callers; /* one job at a time */
        pthread_mutex_t m;       /* guards job, done, ready */
        pthread_cond_t cond;
        FsJob *job;
        bool done, ready;
        bool can_switch; /* holds CAP_SETUID and CAP_SETGID: acts as each root's owner */
        int start_error;
} worker = {
        .callers = PTHREAD_MUTEX_INITIALIZER,
        .m = PTHREAD_MUTEX_INITIALIZER,
        .cond = PTHREAD_COND_INITIALIZER,
};
static pthread_once_t worker_once = PTHREAD_ONCE_INIT;

#define CAP_BIT(c) (UINT32_C(1) << (c))

/* Leaves the calling thread (only) with CAP_SETUID and CAP_SETGID in its effective
 * and permitted sets when keep_setid, else with none; nothing inheritable. */
static int thread_caps_limit(bool keep_setid)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};

        if (keep_setid)
                d[0].effective = d[0].permitted = CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETGID);
        if (syscall(SYS_capset, &h, d) < 0)
                return negative_errno();
        return 0;
}

/* True if the calling thread may hold CAP_SETUID and CAP_SETGID. */
static bool thread_may_switch(void)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};
        uint32_t want = CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETGID);

        if (syscall(SYS_capget, &h, d) < 0)
                return false;
        return (d[0].permitted & want) == want;
}

/* Makes the calling thread act as cred on the file system. Raw system calls: they
 * change this thread only. setfsuid/setfsgid return the previous id whether or not
 * they worked, so each is checked with a second call that changes nothing.
 * Returns 0, or -EIO if the thread could not become cred (then nothing is done). */
static int thread_become(const FsCred *cred)
{
        /* What this thread is now (the worker's alone): five system calls, each
         * committing new credentials, are saved when the next job is the same
         * owner's, as it mostly is. */
        static FsCred now;
        static bool now_valid;
        gid_t *groups;

        if (!worker.can_switch)
                return 0;
        if (now_valid && now.uid == cred->uid && now.gid == cred->gid &&
            now.n_groups == cred->n_groups &&
            memcmp(now.groups, cred->groups, cred->n_groups * sizeof *cred->groups) == 0)
                return 0;
        now_valid = false;
        if (syscall(SYS_setgroups, cred->n_groups, cred->groups) < 0)
                return -EIO;
        (void)syscall(SYS_setfsgid, cred->gid);
        if ((gid_t)syscall(SYS_setfsgid, (gid_t)-1) != cred->gid)
                return -EIO;
        (void)syscall(SYS_setfsuid, cred->uid);
        if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != cred->uid)
                return -EIO;
        groups = reallocarray(now.groups, cred->n_groups, sizeof *groups);
        if (groups) {
                memcpy(groups, cred->groups, cred->n_groups * sizeof *groups);
                now = (FsCred){cred->uid, cred->gid, groups, cred->n_groups};
                now_valid = true;
        }
        return 0;
}

static void *worker_main(void *unused)
{
        bool can = thread_may_switch();
        int r = thread_caps_limit(can);

        pthread_mutex_lock(&worker.m);
        worker.can_switch = can;
        worker.start_error = r;
        worker.ready = true;
        pthread_cond_broadcast(&worker.cond);
        if (r < 0) {
                pthread_mutex_unlock(&worker.m);
                return NULL;
        }
        for (;;) {
                FsJob *j;

                while (!worker.job)
                        pthread_cond_wait(&worker.cond, &worker.m);
                j = worker.job;
                pthread_mutex_unlock(&worker.m);
                j->result = thread_become(j->cred);
                if (j->result == 0)
                        j->result = j->fn(j->arg);
                pthread_mutex_lock(&worker.m);
                worker.job = NULL;
                worker.done = true;
                pthread_cond_broadcast(&worker.cond);
        }
        return NULL;
}

/* Starts the worker with every signal blocked (it inherits the mask) and waits
 * until it has limited its capabilities. */
static void worker_start(void)
{
        sigset_t all, old;
        pthread_attr_t attr;
        pthread_t t;
        int r;

        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&t, &attr, worker_main, NULL);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0) {
                worker.start_error = -r;
                return;
        }
        pthread_mutex_lock(&worker.m);
        while (!worker.ready)
                pthread_cond_wait(&worker.cond, &worker.m);
        pthread_mutex_unlock(&worker.m);
}

/*
 * Runs fn(arg) on the worker, acting as cred on the file system, and waits for it.
 * fn returns 0 or -errno and must use only *at() calls on fds it is given (the
 * worker shares the process's fd table, cwd and umask). Returns fn's result, or
 * -errno if the worker could not start or act as cred.
 */
static int fs_as(const FsCred *cred, int (*fn)(void *arg), void *arg)
{
        FsJob j = {.cred = cred, .fn = fn, .arg = arg};

        pthread_once(&worker_once, worker_start);
        if (worker.start_error < 0)
                return worker.start_error;
        pthread_mutex_lock(&worker.callers);
        pthread_mutex_lock(&worker.m);
        worker.done = false;
        worker.job = &j;
        pthread_cond_broadcast(&worker.cond);
        while (!worker.done)
                pthread_cond_wait(&worker.cond, &worker.m);
        pthread_mutex_unlock(&worker.m);
        pthread_mutex_unlock(&worker.callers);
        return j.result;
}

/* The uid the worker acted as for cred (after fs_as()): cred's, or the kernel's own
 * when it cannot switch. For the audit record. */
static uid_t acting_uid(const FsCred *cred)
{
        return worker.can_switch ? cred->uid : geteuid();
}

/* ---- roots -------------------------------------------------------------------------- */

/* True if name can be a root: what the catalogue accepts as fs.read's scope. */
static bool root_name_is_valid(const char *name)
{
        char right[sizeof "fs.read:" + CAPABILITY_ROOT_MAX];
        CapabilityRight parsed;

        if (strnlen(name, CAPABILITY_ROOT_MAX + 1) > CAPABILITY_ROOT_MAX)
                return false;
        snprintf(right, sizeof right, "fs.read:%s", name);
        return capability_right_parse(right, &parsed, NULL) == 0;
}

/* The host path configured for root name in o->roots, or NULL. */
static const char *root_configured(const BrokerOptions *o, const char *name)
{
        size_t len = strlen(name);

        for (char *const *r = o->roots; r && *r; r++)
                if (strncmp(*r, name, len) == 0 && (*r)[len] == '=')
                        return *r + len + 1;
        return NULL;
}

/* The kernel's overflow id (what an unmapped uid or gid shows as: "nobody"), from
 * /proc/sys/kernel/overflow{uid,gid}; 65534, the kernel's default, if unreadable. */
static unsigned overflow_id(const char *file)
{
        char buf[32] = {};
        unsigned long v;
        char *end;
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;

        safe_close(fd);
        if (n <= 0)
                return 65534;
        errno = 0;
        v = strtoul(buf, &end, 10);
        if (errno != 0 || end == buf || v == 0 || v > 65535)
                return 65534;
        return (unsigned)v;
}

/* Opens the directory of root name (O_PATH), creating the default one (owned by
 * the overflow user when the kernel is root: see "Identity" above). */
static int root_open(const BrokerOptions *o, const char *name, int *ret_fd)
{
        const char *path = root_configured(o, name);
        _cleanup_close_ int state = -EBADF, roots = -EBADF;
        int fd;

        if (path) {
                fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0)
                        return negative_errno();
                *ret_fd = fd;
                return 0;
        }
        if (!o->state_dir)
                return -ENOTSUP;
        state = open(o->state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (state < 0)
                return negative_errno();
        if (mkdirat(state, "roots", 0700) < 0 && errno != EEXIST)
                return negative_errno();
        roots = openat(state, "roots", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (roots < 0)
                return negative_errno();
        if (mkdirat(roots, name, 0700) == 0) {
                if (geteuid() == 0 &&
                    fchownat(roots, name, overflow_id("/proc/sys/kernel/overflowuid"),
                             overflow_id("/proc/sys/kernel/overflowgid"), AT_SYMLINK_NOFOLLOW) < 0)
                        return negative_errno();
        } else if (errno != EEXIST)
                return negative_errno();
        fd = openat(roots, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

/*
 * Who acts for a root whose directory is st: its owner with the owner's primary
 * group and supplementary groups (getpwuid_r + getgrouplist), or, for an owner
 * without a passwd entry, the directory's group alone. A root owned by uid 0 is
 * acted on as the overflow user when the kernel is root. Fills *ret (free
 * ret->groups) and returns 0, or -ENOMEM.
 */
static int cred_of_owner(const struct stat *st, FsCred *ret)
{
        FsCred c = {.uid = st->st_uid, .gid = st->st_gid};
        struct passwd pw, *found = NULL;
        char buf[16384]; /* a passwd entry; larger ones are ERANGE: no entry, below */
        int n = 64;

        if (c.uid == 0 && geteuid() == 0) {
                c.uid = overflow_id("/proc/sys/kernel/overflowuid");
                c.gid = overflow_id("/proc/sys/kernel/overflowgid");
        } else if (getpwuid_r(c.uid, &pw, buf, sizeof buf, &found) == 0 && found) {
                c.gid = pw.pw_gid;
                for (;;) {
                        gid_t *g = reallocarray(c.groups, (size_t)n, sizeof *g);
                        int want = n;

                        if (!g) {
                                free(c.groups);
                                return -ENOMEM;
                        }
                        c.groups = g;
                        if (getgrouplist(pw.pw_name, pw.pw_gid, g, &want) >= 0) {
                                c.n_groups = (size_t)want;
                                break;
                        }
                        if (want <= n || (unsigned)want > FS_GROUPS_MAX) {
                                /* More than the kernel allows: the primary group alone. */
                                c.n_groups = 0;
                                break;
                        }
                        n = want;
                }
        }
        if (c.n_groups == 0) {
                free(c.groups);
                c.groups = malloc(sizeof *c.groups);
                if (!c.groups)
                        return -ENOMEM;
                c.groups[0] = c.gid;
                c.n_groups = 1;
        }
        *ret = c;
        return 0;
}

/*
 * The app's root named name, from its cache or opened now into *scratch (when the
 * cache is full: release it with fs_root_done() after use; *ret == scratch says
 * so). Returns 0 and *ret, or -errno.
 */
static int root_get(BrokerApp *app, const char *name, FsRoot *scratch, FsRoot **ret)
{
        const BrokerOptions *o = broker_options(broker_app_broker(app));
        FsState *s = broker_app_slot(app, BROKER_SLOT_FS);
        FsRoot r = {.fd = -EBADF, .mnt = {-EBADF, -EBADF}};
        struct stat st;
        int k;

        for (unsigned i = 0; s && i < s->n; i++)
                if (strcmp(s->roots[i].name, name) == 0) {
                        *ret = &s->roots[i];
                        return 0;
                }
        k = root_open(o, name, &r.fd);
        if (k < 0)
                return k;
        if (fstat(r.fd, &st) < 0) {
                k = negative_errno();
                fs_root_done(&r);
                return k;
        }
        k = cred_of_owner(&st, &r.cred);
        if (k < 0) {
                fs_root_done(&r);
                return k;
        }
        snprintf(r.name, sizeof r.name, "%s", name);
        if (!s) {
                s = calloc(1, sizeof *s);
                if (s) {
                        broker_app_set_slot(app, BROKER_SLOT_FS, s);
                        broker_handle_add(app, &s->handle, NULL, fs_state_close);
                }
        }
        if (!s || s->n >= FS_ROOTS_CACHED) {
                *scratch = r;
                *ret = scratch;
                return 0;
        }
        s->roots[s->n] = r;
        *ret = &s->roots[s->n++];
        return 0;
}

/*
 * A count that changes whenever the kernel's mount namespace gained or lost a
 * mount since the last call: poll(2) of /proc/self/mountinfo reports POLLPRI then
 * (proc(5), "/proc/pid/mountinfo"). A root's clones (root_mount()) are copies of
 * the mount tree beneath the root at the time they were made; a mount made on the
 * host beneath the root later is not in them and would show the folder it covers.
 * So clones older than the current count are made again. If mountinfo cannot be
 * opened, every call is a change (clones are made for each call). On the kernel's
 * loop only (not thread-safe).
 */
static uint64_t mounts_generation(void)
{
        static int fd = -EBADF;
        static uint64_t gen = 1;
        struct pollfd p;

        if (fd < 0) {
                fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
                return ++gen;
        }
        p = (struct pollfd){.fd = fd, .events = POLLPRI};
        if (poll(&p, 1, 0) != 0)
                gen++; /* a change, or an error: made again either way */
        return gen;
}

/*
 * The mount fs calls on root r resolve beneath: a detached clone of r's folder
 * (open_tree(2) OPEN_TREE_CLONE | AT_RECURSIVE, so it holds the mounts beneath the
 * root too, which RESOLVE_NO_XDEV still refuses to cross) with MOUNT_ATTR_NOSUID,
 * NODEV and NOEXEC, and MOUNT_ATTR_RDONLY unless write, private (mount_setattr(2),
 * on every mount of the clone). A passed fd lives on it: whatever the file's permission
 * bits, a reopen of it through /proc/self/fd/N for writing is EROFS when it was
 * opened from the read-only clone, exec of it is EACCES, and readlink of
 * /proc/self/fd/N shows its path beneath the root alone (a detached mount has no
 * path in any namespace). A mount already read-only on the host stays so.
 * Made on first use and kept with r (closed with it, or made again when the
 * kernel's mounts changed: mounts_generation()), by the calling thread, which
 * needs CAP_SYS_ADMIN: the kernel's loop, never the worker. Returns the O_PATH
 * fd of the clone's root (owned by r), or -errno (-EPERM without CAP_SYS_ADMIN,
 * -ENOSYS before Linux 5.12).
 */
static int root_mount(FsRoot *r, bool write)
{
        struct mount_attr attr = {
                .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                            (write ? 0 : MOUNT_ATTR_RDONLY),
                /* Out of the host mounts' peer groups: a host mount event walks
                 * no clone; later mounts are picked up by mounts_generation(). */
                .propagation = MS_PRIVATE,
        };
        uint64_t gen = mounts_generation();
        _cleanup_close_ int m = -EBADF;

        if (r->mnt_gen != gen) {
                for (unsigned i = 0; i < ELEMENTSOF(r->mnt); i++) {
                        safe_close(r->mnt[i]);
                        r->mnt[i] = -EBADF;
                }
                r->mnt_gen = gen;
        }
        if (r->mnt[write] >= 0)
                return r->mnt[write];
        m = (int)syscall(SYS_open_tree, r->fd, "",
                         AT_EMPTY_PATH | AT_RECURSIVE | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (m < 0)
                return negative_errno();
        if (syscall(SYS_mount_setattr, m, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
                return negative_errno();
        r->mnt[write] = TAKE_FD(m);
        return r->mnt[write];
}

/* ---- resolution (on the worker) ----------------------------------------------------- */

static int openat2_beneath(int dir, const char *path, uint64_t flags, uint64_t mode)
{
        struct open_how how = {
                .flags = flags | O_CLOEXEC,
                .mode = mode,
                .resolve = FS_RESOLVE,
        };

        for (unsigned i = 0;; i++) {
                long fd = syscall(SYS_openat2, dir, path, &how, sizeof how);

                if (fd >= 0)
                        return (int)fd;
                if (errno != EAGAIN || i + 1 >= FS_OPEN_RETRIES)
                        return negative_errno();
        }
}

/*
 * Splits path (1..FS_PATH_MAX bytes) into the directory holding its last component
 * (*ret_parent, "." for none) and that component (*ret_name), both in buf (size >
 * FS_PATH_MAX bytes). Trailing slashes are dropped and set *ret_dir_only.
 * Returns 0, -EXDEV for an absolute path, -EINVAL if the last component is not a
 * name ("", ".", "..").
 */
static int path_split(const char *path, char *buf, size_t size, const char **ret_parent,
                      const char **ret_name, bool *ret_dir_only)
{
        size_t len = strnlen(path, size);
        char *slash;

        if (len == 0 || len >= size)
                return -EINVAL;
        if (path[0] == '/')
                return -EXDEV;
        memcpy(buf, path, len + 1);
        *ret_dir_only = false;
        while (len > 0 && buf[len - 1] == '/') {
                buf[--len] = 0;
                *ret_dir_only = true;
        }
        slash = strrchr(buf, '/');
        if (slash) {
                *slash = 0;
                *ret_parent = buf;
                *ret_name = slash + 1;
        } else {
                *ret_parent = ".";
                *ret_name = buf;
        }
        if (!**ret_name || strcmp(*ret_name, ".") == 0 || strcmp(*ret_name, "..") == 0)
                return -EINVAL;
        return 0;
}

/* Opens the parent directory of path beneath root (O_PATH) and points *ret_name
 * at path's last component in buf. Returns the fd or -errno. */
static int parent_beneath(int root, const char *path, char *buf, size_t size, const char **ret_name,
                          bool *ret_dir_only)
{
        const char *parent;
        int r = path_split(path, buf, size, &parent, ret_name, ret_dir_only);

        if (r < 0)
                return r;
        return openat2_beneath(root, parent, O_PATH | O_DIRECTORY, 0);
}

static uint32_t file_type(mode_t m)
{
        if (S_ISREG(m))
                return CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_REGULAR;
        if (S_ISDIR(m))
                return CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_DIRECTORY;
        if (S_ISLNK(m))
                return CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_SYMLINK;
        return CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_OTHER;
}

static int64_t mtime_ns(const struct stat *st)
{
        return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* ---- fs.open ------------------------------------------------------------------------ */

typedef struct OpenJob {
        int root;
        const char *path;
        uint32_t flags;
        unsigned mode;
        int fd; /* out */
        bool created;
        struct stat st;
} OpenJob;

/*
 * Opens the existing regular file at path beneath root with open(2) flags acc (an
 * access mode, O_TRUNC, O_APPEND): its type is checked on an O_PATH fd first, and
 * that very file is then opened through /proc/thread-self/fd/N, with the
 * permission check of whoever runs this, O_NONBLOCK (a file another program holds
 * a lease on is EAGAIN, not a wait of up to lease-break-time on the kernel's loop;
 * the caller clears the flag). Returns the fd or -errno (-EISDIR a directory,
 * -ENXIO anything else that is not a regular file).
 */
static int open_existing(int root, const char *path, int acc, struct stat *ret_st)
{
        _cleanup_close_ int p = -EBADF, fd = -EBADF;
        char proc[64];
        struct stat pst;

        p = openat2_beneath(root, path, O_PATH, 0);
        if (p < 0)
                return p;
        if (fstat(p, &pst) < 0)
                return negative_errno();
        if (S_ISDIR(pst.st_mode))
                return -EISDIR;
        if (!S_ISREG(pst.st_mode))
                return -ENXIO;
        snprintf(proc, sizeof proc, "/proc/thread-self/fd/%d", p);
        fd = open(proc, acc | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, ret_st) < 0)
                return negative_errno();
        /* The magic link leads to p's own file; anything else is a broken /proc. */
        if (ret_st->st_dev != pst.st_dev || ret_st->st_ino != pst.st_ino ||
            !S_ISREG(ret_st->st_mode))
                return -EIO;
        return TAKE_FD(fd);
}

static int open_job(void *arg)
{
        OpenJob *j = arg;
        int acc, fl, fd = -EBADF;

        if ((j->flags & (FS_READ | FS_WRITE)) == (FS_READ | FS_WRITE))
                acc = O_RDWR;
        else if (j->flags & FS_WRITE)
                acc = O_WRONLY;
        else
                acc = O_RDONLY;
        if (j->flags & FS_TRUNCATE)
                acc |= O_TRUNC;
        if (j->flags & FS_APPEND)
                acc |= O_APPEND;

        if (!(j->flags & FS_CREATE))
                fd = open_existing(j->root, j->path, acc, &j->st);
        else
                /* Exclusive first, to know who made the file: O_CREAT|O_EXCL makes a
                 * new regular file and follows no symlink. A file that vanishes
                 * between the two tries is tried again, a bounded number of times. */
                for (unsigned i = 0; i < FS_OPEN_RETRIES; i++) {
                        fd = openat2_beneath(j->root, j->path,
                                             acc | O_CREAT | O_EXCL | O_NOCTTY | O_NONBLOCK,
                                             j->mode & 0666);
                        if (fd >= 0) {
                                j->created = true;
                                if (fstat(fd, &j->st) < 0) {
                                        int r = negative_errno();

                                        safe_close(fd);
                                        return r;
                                }
                                break;
                        }
                        if (fd != -EEXIST || (j->flags & FS_EXCLUSIVE))
                                break;
                        fd = open_existing(j->root, j->path, acc, &j->st);
                        if (fd != -ENOENT)
                                break;
                }
        if (fd < 0)
                return fd;
        /* Blocking again for the app, as it asked. */
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
                int r = negative_errno();

                safe_close(fd);
                return r;
        }
        j->fd = fd;
        return 0;
}

/* The right of an fs call on root: fs.read:<root> or fs.write:<root> in buf, or NULL
 * and *ret_error: -EINVAL (bad length), -EPERM (no such root can be granted). */
static const char *root_right(const char *root, bool write, char *buf, size_t size, int *ret_error)
{
        size_t len = strnlen(root, FS_ROOT_NAME_MAX + 1);
        int n;

        *ret_error = -EINVAL;
        if (len == 0 || len > FS_ROOT_NAME_MAX)
                return NULL;
        if (!root_name_is_valid(root)) {
                *ret_error = -EPERM; /* no such root can ever be granted */
                return NULL;
        }
        n = snprintf(buf, size, "%s:%s", write ? "fs.write" : "fs.read", root);
        if (n < 0 || (size_t)n >= size)
                return NULL;
        *ret_error = 0;
        return buf;
}

static bool path_ok(const char *path)
{
        size_t len = strnlen(path, FS_PATH_MAX + 1);

        return len > 0 && len <= FS_PATH_MAX;
}

static const char *fs_open_right(const ProtobufCMessage *req, char *buf, size_t size,
                                 int *ret_error)
{
        const Cella__V1__FsOpenRequest *m = (const void *)req;
        uint32_t f = m->flags;

        *ret_error = -EINVAL;
        if (!path_ok(m->path) || m->mode > 0777 || (f & ~FS_FLAGS_ALL) ||
            !(f & (FS_READ | FS_WRITE)) || ((f & FS_EXCLUSIVE) && !(f & FS_CREATE)))
                return NULL;
        return root_right(m->root, f & FS_NEEDS_WRITE, buf, size, ret_error);
}

/* An open for reading and writing needs fs.read:<root> as well as the fs.write the
 * core's first check names (right_of); decided together (broker_app_take()). */
static const char *fs_open_also_right(const ProtobufCMessage *req, char *buf, size_t size)
{
        const Cella__V1__FsOpenRequest *m = (const void *)req;
        int error;

        if (!(m->flags & FS_READ) || !(m->flags & FS_NEEDS_WRITE))
                return NULL;
        return root_right(m->root, false, buf, size, &error);
}

/* The message of an fs call's error, or NULL for the errno's own. */
static const char *fs_error_text(int r)
{
        switch (r) {
        case -EXDEV:
                return "the path leaves the root or crosses a mount";
        case -ELOOP:
                return "the path goes through a procfs magic link, or too many symlinks";
        case -ENXIO:
                return "not a regular file or directory (FIFO, socket or device)";
        case -EACCES:
                return "the root's owner has no permission for this";
        case -EAGAIN:
                return "busy: another program holds a lease on the file, or renames kept "
                       "racing the lookup; try again";
        case -EIO:
                return "I/O error, or the kernel could not act as the root's owner";
        default:
                return NULL;
        }
}

/*
 * Runs job(arg) on the worker, as the owner of root name of c's app, with
 * *root_fd set to the fd of the root's clone to resolve beneath: the writable one
 * if write, else the read-only one (root_mount()). Returns job's result (0 or
 * -errno); when the root or its clone cannot be had, answers c itself and
 * returns 1.
 */
static int run_on_root(BrokerCall *c, const char *name, bool write, int (*job)(void *arg),
                       void *arg, int *root_fd)
{
        FsRoot scratch, *root;
        int r;

        r = root_get(c->app, name, &scratch, &root);
        if (r < 0) {
                broker_reply_error(c, -r, "the root directory cannot be opened");
                return 1;
        }
        r = root_mount(root, write);
        if (r < 0) {
                broker_reply_error(c, -r,
                                   "the root's restricted mount cannot be made (open_tree and "
                                   "mount_setattr: the kernel needs CAP_SYS_ADMIN, Linux 5.12)");
                r = 1;
        } else {
                *root_fd = r;
                r = fs_as(&root->cred, job, arg);
                broker_audit_set(c, "as_uid", json_integer(acting_uid(&root->cred)));
        }
        if (root == &scratch)
                fs_root_done(&scratch);
        return r;
}

static void fs_open_handle(BrokerCall *c)
{
        const Cella__V1__FsOpenRequest *m = (const void *)c->request;
        Cella__V1__FsOpenReply reply = CELLA__V1__FS_OPEN_REPLY__INIT;
        OpenJob j = {.path = m->path, .flags = m->flags, .mode = m->mode, .fd = -EBADF};
        int r;

        broker_audit_set(c, "root", json_string(m->root));
        broker_audit_set(c, "path", json_string(m->path));
        broker_audit_set(c, "flags", json_integer(m->flags));
        /* The core decided fs.write, and for read+write fs.read as well
         * (fs_open_also_right()), before any one-time grant was used. */
        /* Beneath the read-only clone unless the open writes: the fd passed lives
         * on it (root_mount()). */
        r = run_on_root(c, m->root, m->flags & FS_NEEDS_WRITE, open_job, &j, &j.root);
        if (r > 0)
                return;
        if (r < 0) {
                broker_reply_error(c, -r,
                                   r == -EISDIR ? "a directory: directories are listed with "
                                                  "fs.list, never passed as fds"
                                                : fs_error_text(r));
                return;
        }
        broker_audit_set(c, "created", json_boolean(j.created));
        reply.is_directory = false;
        reply.size_bytes = (uint64_t)j.st.st_size;
        broker_reply(c, &reply.base, &j.fd, 1);
}

/* ---- fs.list ------------------------------------------------------------------------ */

typedef struct ListEntry {
        char name[FS_NAME_MAX + 1];
        uint32_t type;
        uint64_t size;
        int64_t mtime_ns;
} ListEntry;

typedef struct ListJob {
        int root;
        const char *path;
        uint64_t cookie;
        unsigned max;
        ListEntry *entries; /* max of them */
        unsigned n;         /* out */
        uint64_t next;
        bool end;
        unsigned skipped;
} ListJob;

/* struct linux_dirent64 of getdents64(2). */
typedef struct Dirent64 {
        uint64_t d_ino;
        int64_t d_off;
        unsigned short d_reclen;
        unsigned char d_type;
        char d_name[];
} Dirent64;

static uint32_t dtype_type(unsigned char t)
{
        switch (t) {
        case DT_REG:
                return CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_REGULAR;
        case DT_DIR:
                return CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_DIRECTORY;
        case DT_LNK:
                return CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_SYMLINK;
        case DT_UNKNOWN:
                return CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_UNKNOWN;
        default:
                return CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_OTHER;
        }
}

static int list_job(void *arg)
{
        ListJob *j = arg;
        _cleanup_close_ int p = -EBADF, d = -EBADF;
        _Alignas(Dirent64) char buf[16384];
        unsigned scanned = 0;
        size_t bytes = 0;
        struct stat st;

        p = openat2_beneath(j->root, j->path, O_PATH, 0);
        if (p < 0)
                return p;
        if (fstat(p, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        /* A directory is opened for reading from its O_PATH fd: the same inode. */
        d = openat(p, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d < 0)
                return negative_errno();
        if (j->cookie != 0 && lseek(d, (off_t)j->cookie, SEEK_SET) < 0)
                return negative_errno();
        j->next = j->cookie;
        for (;;) {
                long n = syscall(SYS_getdents64, d, buf, sizeof buf);

                if (n < 0)
                        return negative_errno();
                if (n == 0) {
                        j->end = true;
                        return 0;
                }
                for (long pos = 0; pos < n;) {
                        const Dirent64 *de = (const void *)(buf + pos);
                        size_t len = strnlen(de->d_name, FS_NAME_MAX + 1);
                        ListEntry *e;

                        /* Entries left out count too: a directory of names that are
                         * never kept costs one page's work, not a full scan. */
                        if (scanned++ >= FS_LIST_SCAN_MAX)
                                return 0;
                        pos += de->d_reclen;
                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
                                j->next = (uint64_t)de->d_off;
                                continue;
                        }
                        if (len > FS_NAME_MAX ||
                            !wire_utf8_valid((const uint8_t *)de->d_name, len)) {
                                j->skipped++;
                                j->next = (uint64_t)de->d_off;
                                continue;
                        }
                        if (j->n >= j->max || bytes + len + FS_LIST_ENTRY_COST > FS_LIST_BYTES_MAX)
                                return 0; /* page full: the next one starts at this entry */
                        e = &j->entries[j->n];
                        if (fstatat(d, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                                e->type = file_type(st.st_mode);
                                e->size = S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) ||
                                                          S_ISLNK(st.st_mode)
                                                  ? (uint64_t)st.st_size
                                                  : 0;
                                e->mtime_ns = mtime_ns(&st);
                        } else if (errno == ENOENT) {
                                j->next = (uint64_t)de->d_off; /* removed meanwhile */
                                continue;
                        } else {
                                e->type = dtype_type(de->d_type);
                                e->size = 0;
                                e->mtime_ns = 0;
                        }
                        memcpy(e->name, de->d_name, len + 1);
                        j->n++;
                        bytes += len + FS_LIST_ENTRY_COST;
                        j->next = (uint64_t)de->d_off;
                }
        }
}

static const char *fs_list_right(const ProtobufCMessage *req, char *buf, size_t size,
                                 int *ret_error)
{
        const Cella__V1__FsListRequest *m = (const void *)req;

        *ret_error = -EINVAL;
        if (!path_ok(m->path) || m->max_entries > FS_LIST_ENTRIES_MAX ||
            m->cookie > (uint64_t)INT64_MAX)
                return NULL;
        return root_right(m->root, false, buf, size, ret_error);
}

static void fs_list_handle(BrokerCall *c)
{
        const Cella__V1__FsListRequest *m = (const void *)c->request;
        Cella__V1__FsListReply reply = CELLA__V1__FS_LIST_REPLY__INIT;
        _cleanup_free_ Cella__V1__FsEntry *entries = NULL;
        _cleanup_free_ Cella__V1__FsEntry **ptrs = NULL;
        _cleanup_free_ ListEntry *found = NULL;
        ListJob j = {.path = m->path, .cookie = m->cookie};
        int r;

        broker_audit_set(c, "root", json_string(m->root));
        broker_audit_set(c, "path", json_string(m->path));
        j.max = m->max_entries ?: FS_LIST_ENTRIES_MAX;
        j.entries = found = calloc(j.max, sizeof *found);
        entries = calloc(j.max, sizeof *entries);
        ptrs = calloc(j.max, sizeof *ptrs);
        if (!found || !entries || !ptrs) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        r = run_on_root(c, m->root, false, list_job, &j, &j.root);
        if (r > 0)
                return;
        if (r < 0) {
                broker_reply_error(c, -r,
                                   r == -EINVAL && m->cookie ? "not a cookie of this directory"
                                                             : fs_error_text(r));
                return;
        }
        for (unsigned i = 0; i < j.n; i++) {
                cella__v1__fs_entry__init(&entries[i]);
                entries[i].name = found[i].name;
                entries[i].type = found[i].type;
                entries[i].size_bytes = found[i].size;
                entries[i].mtime_ns = found[i].mtime_ns;
                ptrs[i] = &entries[i];
        }
        reply.entries = ptrs;
        reply.n_entries = j.n;
        reply.next_cookie = j.next;
        reply.end = j.end;
        reply.skipped = j.skipped;
        broker_audit_set(c, "entries", json_integer(j.n));
        broker_reply(c, &reply.base, NULL, 0);
}

/* ---- fs.stat ------------------------------------------------------------------------ */

typedef struct StatJob {
        int root;
        const char *path;
        bool no_follow;
        struct stat st; /* out */
} StatJob;

static int stat_job(void *arg)
{
        StatJob *j = arg;
        _cleanup_close_ int p = -EBADF;

        p = openat2_beneath(j->root, j->path, O_PATH | (j->no_follow ? O_NOFOLLOW : 0), 0);
        if (p < 0)
                return p;
        if (fstat(p, &j->st) < 0)
                return negative_errno();
        return 0;
}

static const char *fs_stat_right(const ProtobufCMessage *req, char *buf, size_t size,
                                 int *ret_error)
{
        const Cella__V1__FsStatRequest *m = (const void *)req;

        *ret_error = -EINVAL;
        if (!path_ok(m->path))
                return NULL;
        return root_right(m->root, false, buf, size, ret_error);
}

static void fs_stat_handle(BrokerCall *c)
{
        const Cella__V1__FsStatRequest *m = (const void *)c->request;
        Cella__V1__FsStatReply reply = CELLA__V1__FS_STAT_REPLY__INIT;
        StatJob j = {.path = m->path, .no_follow = m->no_follow};
        int r;

        broker_audit_set(c, "root", json_string(m->root));
        broker_audit_set(c, "path", json_string(m->path));
        r = run_on_root(c, m->root, false, stat_job, &j, &j.root);
        if (r > 0)
                return;
        if (r < 0) {
                broker_reply_error(c, -r, fs_error_text(r));
                return;
        }
        reply.type = file_type(j.st.st_mode);
        reply.size_bytes = S_ISREG(j.st.st_mode) || S_ISDIR(j.st.st_mode) || S_ISLNK(j.st.st_mode)
                                   ? (uint64_t)j.st.st_size
                                   : 0;
        reply.mtime_ns = mtime_ns(&j.st);
        reply.mode = j.st.st_mode & 07777;
        broker_reply(c, &reply.base, NULL, 0);
}

/* ---- fs.mkdir, fs.unlink, fs.rename ------------------------------------------------- */

typedef struct ChangeJob {
        int root;
        const char *path, *new_path;
        unsigned mode;  /* mkdir */
        uint32_t flags; /* rename: FsRenameFlag */
} ChangeJob;

static int mkdir_job(void *arg)
{
        ChangeJob *j = arg;
        _cleanup_close_ int p = -EBADF;
        char buf[FS_PATH_MAX + 1];
        const char *name;
        bool dir_only;

        p = parent_beneath(j->root, j->path, buf, sizeof buf, &name, &dir_only);
        if (p < 0)
                return p;
        if (mkdirat(p, name, j->mode & 0777) < 0)
                return negative_errno();
        return 0;
}

static int unlink_job(void *arg)
{
        ChangeJob *j = arg;
        _cleanup_close_ int p = -EBADF;
        char buf[FS_PATH_MAX + 1];
        const char *name;
        bool dir_only;

        p = parent_beneath(j->root, j->path, buf, sizeof buf, &name, &dir_only);
        if (p < 0)
                return p;
        if (unlinkat(p, name, dir_only ? AT_REMOVEDIR : 0) == 0)
                return 0;
        /* unlink(2) of a directory is EISDIR on Linux: then it is rmdir. */
        if (errno != EISDIR || dir_only)
                return negative_errno();
        if (unlinkat(p, name, AT_REMOVEDIR) < 0)
                return negative_errno();
        return 0;
}

static int rename_job(void *arg)
{
        ChangeJob *j = arg;
        _cleanup_close_ int from = -EBADF, to = -EBADF;
        char buf_from[FS_PATH_MAX + 1], buf_to[FS_PATH_MAX + 1];
        const char *name_from, *name_to;
        bool dir_from, dir_to;
        unsigned flags = 0;
        struct stat st;

        from = parent_beneath(j->root, j->path, buf_from, sizeof buf_from, &name_from, &dir_from);
        if (from < 0)
                return from;
        to = parent_beneath(j->root, j->new_path, buf_to, sizeof buf_to, &name_to, &dir_to);
        if (to < 0)
                return to;
        /* "dir/" names a directory only, as rename(2) has it. */
        if (dir_from || dir_to) {
                if (fstatat(from, name_from, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return negative_errno();
                if (!S_ISDIR(st.st_mode))
                        return -ENOTDIR;
        }
        if (j->flags & FS_RENAME_NOREPLACE)
                flags |= RENAME_NOREPLACE;
        if (j->flags & FS_RENAME_EXCHANGE)
                flags |= RENAME_EXCHANGE;
        if (renameat2(from, name_from, to, name_to, flags) < 0)
                return negative_errno();
        return 0;
}

static const char *fs_mkdir_right(const ProtobufCMessage *req, char *buf, size_t size,
                                  int *ret_error)
{
        const Cella__V1__FsMkdirRequest *m = (const void *)req;

        *ret_error = -EINVAL;
        if (!path_ok(m->path) || m->mode > 0777)
                return NULL;
        return root_right(m->root, true, buf, size, ret_error);
}

static const char *fs_unlink_right(const ProtobufCMessage *req, char *buf, size_t size,
                                   int *ret_error)
{
        const Cella__V1__FsUnlinkRequest *m = (const void *)req;

        *ret_error = -EINVAL;
        if (!path_ok(m->path))
                return NULL;
        return root_right(m->root, true, buf, size, ret_error);
}

static const char *fs_rename_right(const ProtobufCMessage *req, char *buf, size_t size,
                                   int *ret_error)
{
        const Cella__V1__FsRenameRequest *m = (const void *)req;

        *ret_error = -EINVAL;
        if (!path_ok(m->old_path) || !path_ok(m->new_path) ||
            (m->flags != 0 && m->flags != FS_RENAME_NOREPLACE && m->flags != FS_RENAME_EXCHANGE))
                return NULL;
        return root_right(m->root, true, buf, size, ret_error);
}

/* Answers c after job ran as the owner of root name on j. */
static void change_answer(BrokerCall *c, const char *root, int (*job)(void *arg), ChangeJob *j,
                          const ProtobufCMessage *reply)
{
        int r = run_on_root(c, root, true, job, j, &j->root);

        if (r > 0)
                return;
        if (r < 0) {
                broker_reply_error(c, -r,
                                   r == -EINVAL ? "the last component must be a name, not "
                                                  "\".\" or \"..\", or the move is impossible"
                                                : fs_error_text(r));
                return;
        }
        broker_reply(c, reply, NULL, 0);
}

static void fs_mkdir_handle(BrokerCall *c)
{
        const Cella__V1__FsMkdirRequest *m = (const void *)c->request;
        Cella__V1__FsMkdirReply reply = CELLA__V1__FS_MKDIR_REPLY__INIT;
        ChangeJob j = {.path = m->path, .mode = m->mode};

        broker_audit_set(c, "root", json_string(m->root));
        broker_audit_set(c, "path", json_string(m->path));
        change_answer(c, m->root, mkdir_job, &j, &reply.base);
}

static void fs_unlink_handle(BrokerCall *c)
{
        const Cella__V1__FsUnlinkRequest *m = (const void *)c->request;
        Cella__V1__FsUnlinkReply reply = CELLA__V1__FS_UNLINK_REPLY__INIT;
        ChangeJob j = {.path = m->path};

        broker_audit_set(c, "root", json_string(m->root));
        broker_audit_set(c, "path", json_string(m->path));
        change_answer(c, m->root, unlink_job, &j, &reply.base);
}

static void fs_rename_handle(BrokerCall *c)
{
        const Cella__V1__FsRenameRequest *m = (const void *)c->request;
        Cella__V1__FsRenameReply reply = CELLA__V1__FS_RENAME_REPLY__INIT;
        ChangeJob j = {.path = m->old_path, .new_path = m->new_path, .flags = m->flags};

        broker_audit_set(c, "root", json_string(m->root));
        broker_audit_set(c, "path", json_string(m->old_path));
        broker_audit_set(c, "new_path", json_string(m->new_path));
        broker_audit_set(c, "flags", json_integer(m->flags));
        change_answer(c, m->root, rename_job, &j, &reply.base);
}

const BrokerCallDef broker_calls_fs[] = {
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_FS_OPEN,
                .right_of = fs_open_right,
                .also_right_of = fs_open_also_right,
                .handle = fs_open_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_FS_LIST,
                .right_of = fs_list_right,
                .handle = fs_list_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_FS_STAT,
                .right_of = fs_stat_right,
                .handle = fs_stat_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_FS_MKDIR,
                .right_of = fs_mkdir_right,
                .handle = fs_mkdir_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_FS_RENAME,
                .right_of = fs_rename_right,
                .handle = fs_rename_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_FS_UNLINK,
                .right_of = fs_unlink_right,
                .handle = fs_unlink_handle,
        },
        {0},
};
