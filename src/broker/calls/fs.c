/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fs.open (proto/cella.proto "fs", docs/protocol.md "fs.open").
 *
 * fs.open opens a user file outside the app's jail, under a named root the app
 * holds fs.read:<root> / fs.write:<root> for, and passes the fd. The rules:
 *
 * - Rights. READ needs fs.read:<root>. WRITE, CREATE, TRUNCATE and APPEND need
 *   fs.write:<root> (O_RDONLY|O_TRUNC truncates on Linux, and a create is a write
 *   whatever the access mode); both flags need both rights. The fd's access mode is
 *   exactly the one asked: O_RDONLY, O_WRONLY or O_RDWR, never O_PATH.
 * - Roots. BrokerOptions.roots names "name=/host/path"; any other root name that
 *   passes the catalogue's syntax (docs/capabilities.md: 1-32 bytes of a-z 0-9 _ -,
 *   starting with a letter) is <state_dir>/roots/<name>, created 0700 on first use.
 *   A name that fails the syntax can never be granted: EPERM. Each root directory is
 *   opened O_PATH once per app and kept (FS_ROOTS_CACHED of them), so a path is
 *   resolved from the directory the broker first found, even if the host path is
 *   renamed later.
 * - Resolution: openat2(root, path, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS). Every
 *   step, ".." and symlinks included, must stay beneath the root: an absolute path
 *   (the proto says relative; the kernel's EXDEV answers it), "../x", an absolute
 *   symlink, or a relative one leading out fails with EXDEV; procfs magic links
 *   (reachable only under a root that holds a procfs: self/root, self/fd/N) fail
 *   with ELOOP.
 *   Symlinks that stay inside the root are followed, also in the last component:
 *   they are the user's own links between their files, and BENEATH confines them.
 *   openat2 retries for us where it can; its EAGAIN (a rename raced the lookup) is
 *   retried FS_OPEN_RETRIES times.
 * - Only regular files and directories are passed. The open is O_NONBLOCK so a FIFO
 *   cannot stall the broker's loop, and the flag is cleared again before the fd is
 *   passed; anything but a file or a directory is closed and answered ENXIO.
 * - Created files belong to the root directory's owner (fchown after the create;
 *   the broker runs as root), so the user keeps their files. Permission bits are
 *   mode & 0666 (no execute bits on files an app drops in the user's folders),
 *   masked by the broker's umask. To know whether it created the file, a plain
 *   CREATE is tried as CREATE|EXCLUSIVE first, then as an open of the existing file.
 *
 * A revoked fs.read/fs.write cannot take back an fd already passed: the app keeps
 * what it opened for as long as it keeps it open, as a POSIX process keeps an fd
 * after a chmod. Revocation stops every later fs.open at once. Android is, as far
 * as we can tell, no different: a ParcelFileDescriptor opened through a content URI
 * is a plain kernel fd, and revokeUriPermission() documents no effect on
 * descriptors already handed out (we found no statement either way in its docs, so
 * this is our reading, not a quote).
 *
 * fs.usage is in usage.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/macro.h"
#include "broker/broker-internal.h"

#define FS_ROOT_NAME_MAX 63u   /* proto: root 1..63 bytes */
#define FS_PATH_MAX      4095u /* proto: path 1..4095 bytes */
#define FS_ROOTS_CACHED  16u   /* root dir fds kept per app */
#define FS_OPEN_RETRIES  8u    /* openat2 EAGAIN (a rename raced the lookup) */

#define FS_READ      CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_READ
#define FS_WRITE     CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_WRITE
#define FS_CREATE    CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_CREATE
#define FS_EXCLUSIVE CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_EXCLUSIVE
#define FS_TRUNCATE  CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_TRUNCATE
#define FS_APPEND    CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_APPEND
#define FS_DIRECTORY CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_DIRECTORY
#define FS_FLAGS_ALL                                                                               \
        (FS_READ | FS_WRITE | FS_CREATE | FS_EXCLUSIVE | FS_TRUNCATE | FS_APPEND | FS_DIRECTORY)
#define FS_NEEDS_WRITE (FS_WRITE | FS_CREATE | FS_TRUNCATE | FS_APPEND)

typedef struct FsRoot {
        char name[CAPABILITY_ROOT_MAX + 1];
        int fd; /* O_PATH|O_DIRECTORY */
        uid_t uid;
        gid_t gid;
} FsRoot;

/* Per app (BROKER_SLOT_FS). Kept as a handle that depends on no right, so the
 * core closes it when the app detaches. */
typedef struct FsState {
        BrokerHandle handle;
        FsRoot roots[FS_ROOTS_CACHED];
        unsigned n;
} FsState;

static void fs_state_close(BrokerHandle *h)
{
        FsState *s = (FsState *)((char *)h - offsetof(FsState, handle));

        for (unsigned i = 0; i < s->n; i++)
                safe_close(s->roots[i].fd);
        broker_app_set_slot(h->app, BROKER_SLOT_FS, NULL);
        free(s);
}

static void audit_set(BrokerCall *c, const char *key, json_t *v)
{
        if (!c->audit_fields)
                c->audit_fields = json_object();
        if (c->audit_fields)
                json_object_set_new(c->audit_fields, key, v);
        else
                json_decref(v);
}

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

/* Opens the directory of root name (O_PATH), creating the default one. */
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
        if (mkdirat(roots, name, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        fd = openat(roots, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

/* The app's root named name, from its cache or opened now (*ret_owned: close it
 * after use, the cache was full). */
static int root_get(BrokerApp *app, const char *name, FsRoot *ret, bool *ret_owned)
{
        const BrokerOptions *o = broker_options(broker_app_broker(app));
        FsState *s = broker_app_slot(app, BROKER_SLOT_FS);
        FsRoot r = {};
        struct stat st;
        int fd = -EBADF, k;

        for (unsigned i = 0; s && i < s->n; i++)
                if (strcmp(s->roots[i].name, name) == 0) {
                        *ret = s->roots[i];
                        *ret_owned = false;
                        return 0;
                }
        k = root_open(o, name, &fd);
        if (k < 0)
                return k;
        if (fstat(fd, &st) < 0) {
                k = negative_errno();
                safe_close(fd);
                return k;
        }
        snprintf(r.name, sizeof r.name, "%s", name);
        r.fd = fd;
        r.uid = st.st_uid;
        r.gid = st.st_gid;
        if (!s) {
                s = calloc(1, sizeof *s);
                if (s) {
                        broker_app_set_slot(app, BROKER_SLOT_FS, s);
                        broker_handle_add(app, &s->handle, "", fs_state_close);
                }
        }
        *ret = r;
        *ret_owned = !s || s->n >= FS_ROOTS_CACHED;
        if (!*ret_owned)
                s->roots[s->n++] = r;
        return 0;
}

static int openat2_beneath(int dir, const char *path, uint64_t flags, uint64_t mode)
{
        struct open_how how = {
                .flags = flags,
                .mode = mode,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
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
 * Opens path beneath root with the FsOpenFlag bits flags and permission bits mode.
 * Returns the fd (O_CLOEXEC, blocking) and sets *ret_created, or -errno.
 */
static int fs_open_beneath(const FsRoot *root, const char *path, uint32_t flags, unsigned mode,
                           struct stat *ret_st, bool *ret_created)
{
        uint64_t base = O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
        _cleanup_close_ int fd = -EBADF;
        bool created = false;
        int fl;

        if ((flags & (FS_READ | FS_WRITE)) == (FS_READ | FS_WRITE))
                base |= O_RDWR;
        else if (flags & FS_WRITE)
                base |= O_WRONLY;
        else
                base |= O_RDONLY;
        if (flags & FS_TRUNCATE)
                base |= O_TRUNC;
        if (flags & FS_APPEND)
                base |= O_APPEND;
        if (flags & FS_DIRECTORY)
                base |= O_DIRECTORY;

        if (!(flags & FS_CREATE))
                fd = openat2_beneath(root->fd, path, base, 0);
        else if (flags & FS_EXCLUSIVE) {
                fd = openat2_beneath(root->fd, path, base | O_CREAT | O_EXCL, mode & 0666);
                created = fd >= 0;
        } else
                /* Exclusive first, to know who made the file; a file that vanishes
                 * between the two tries is tried again, a bounded number of times. */
                for (unsigned i = 0; i < FS_OPEN_RETRIES; i++) {
                        fd = openat2_beneath(root->fd, path, base | O_CREAT | O_EXCL, mode & 0666);
                        if (fd >= 0) {
                                created = true;
                                break;
                        }
                        if (fd != -EEXIST)
                                break;
                        fd = openat2_beneath(root->fd, path, base, 0);
                        if (fd != -ENOENT)
                                break;
                }
        if (fd < 0)
                return fd;
        if (fstat(fd, ret_st) < 0)
                return negative_errno();
        if (!S_ISREG(ret_st->st_mode) && !S_ISDIR(ret_st->st_mode))
                return -ENXIO;
        if (created && fchown(fd, root->uid, root->gid) < 0)
                return negative_errno();
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
                return negative_errno();
        *ret_created = created;
        return TAKE_FD(fd);
}

static const char *fs_open_right(const ProtobufCMessage *req, char *buf, size_t size,
                                 int *ret_error)
{
        const Cella__V1__FsOpenRequest *m = (const void *)req;
        uint32_t f = m->flags;
        size_t root_len = strnlen(m->root, FS_ROOT_NAME_MAX + 1),
               path_len = strnlen(m->path, FS_PATH_MAX + 1);
        int n;

        *ret_error = -EINVAL;
        if (root_len == 0 || root_len > FS_ROOT_NAME_MAX || path_len == 0 ||
            path_len > FS_PATH_MAX || m->mode > 0777 || (f & ~FS_FLAGS_ALL) ||
            !(f & (FS_READ | FS_WRITE)) || ((f & FS_EXCLUSIVE) && !(f & FS_CREATE)) ||
            ((f & FS_DIRECTORY) && (f & FS_NEEDS_WRITE)))
                return NULL;
        if (!root_name_is_valid(m->root)) {
                *ret_error = -EPERM; /* no such root can ever be granted */
                return NULL;
        }
        n = snprintf(buf, size, "%s:%s", f & FS_NEEDS_WRITE ? "fs.write" : "fs.read", m->root);
        if (n < 0 || (size_t)n >= size)
                return NULL;
        *ret_error = 0;
        return buf;
}

static void fs_open_handle(BrokerCall *c)
{
        const Cella__V1__FsOpenRequest *m = (const void *)c->request;
        Cella__V1__FsOpenReply reply = CELLA__V1__FS_OPEN_REPLY__INIT;
        char read_right[sizeof "fs.read:" + CAPABILITY_ROOT_MAX];
        bool owned = false, created = false;
        struct stat st;
        FsRoot root;
        int fd, r;

        audit_set(c, "root", json_string(m->root));
        audit_set(c, "path", json_string(m->path));
        audit_set(c, "flags", json_integer(m->flags));
        /* The core checked fs.write; read+write needs fs.read as well. */
        snprintf(read_right, sizeof read_right, "fs.read:%s", m->root);
        if ((m->flags & FS_READ) && (m->flags & FS_NEEDS_WRITE) &&
            !broker_app_holds(c->app, read_right, true)) {
                broker_reply_error(c, EACCES, "fs.read is not granted for this root");
                return;
        }
        r = root_get(c->app, m->root, &root, &owned);
        if (r < 0) {
                broker_reply_error(c, -r, "the root directory cannot be opened");
                return;
        }
        fd = fs_open_beneath(&root, m->path, m->flags, m->mode, &st, &created);
        if (owned)
                safe_close(root.fd);
        if (fd < 0) {
                broker_reply_error(c, -fd,
                                   fd == -EXDEV   ? "the path leaves the root"
                                   : fd == -ENXIO ? "not a regular file or directory"
                                                  : NULL);
                return;
        }
        audit_set(c, "created", json_boolean(created));
        reply.is_directory = S_ISDIR(st.st_mode);
        reply.size_bytes = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
        broker_reply(c, &reply.base, &fd, 1);
}

const BrokerCallDef broker_calls_fs[] = {
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_FS_OPEN,
                .cls = BROKER_CLASS_COSTLY,
                .right_of = fs_open_right,
                .handle = fs_open_handle,
        },
        {0},
};
