/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ipc.pipe_create, ipc.shm_create, ipc.shm_open, ipc.accept, ipc.pass, ipc.close,
 * ipc.offer, ipc.list (proto/cella.proto "ipc", docs/ipc.md): pipes, packet
 * channels and shared memory between apps, and the calls every kind's handles share.
 * The objects, handles, offers and quotas are the object layer's
 * (calls/ipc-object.c); semaphores and queues are calls/ipc-semq.c's.
 *
 * Pipes and channels. IPC_PIPE_CREATE makes a kernel pipe (pipe2, its capacity set
 * with F_SETPIPE_SZ) or an AF_UNIX SOCK_SEQPACKET socketpair; the creator gets one
 * end with the reply, the peer it names is sent EVENT_IPC_OFFERED and takes the other
 * end with IPC_ACCEPT (under its own ipc.pipe right for the name). The creator needs
 * bus.send:<peer> as well, as IPC_PASS does: an offer reaches the peer with a name
 * the creator chose, which would otherwise be a message to any app. Until then the
 * broker holds that end (an fd of cellad, bounded by ipc.pending_max); after, it
 * keeps nothing but the two handles' bookkeeping: bytes go app to app at the
 * kernel's speed. A pipe's name is not registered for opens (nobody opens a pipe by
 * name), so one name may serve many pipes at once; each counts against
 * ipc.objects_max while it lives.
 *
 * Shared memory. The creator makes a memfd, sizes it and allocates every page
 * itself, so that they are charged to its memory cgroup; IPC_SHM_CREATE takes that fd
 * and checks, in this order, before the object exists: a regular file whose
 * F_GET_SEALS works and has no seal but F_SEAL_EXEC (a memfd made with
 * MFD_ALLOW_SEALING: a tmpfs file has F_SEAL_SEAL, any other file fails F_GET_SEALS),
 * named "/memfd:..." in /proc; then it removes group and other access (fchmod 0600:
 * a receiver of a read-only fd, a different host uid, could otherwise reopen
 * /proc/self/fd/N read-write) and seals it F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_EXEC
 * (plus F_SEAL_WRITE|F_SEAL_FUTURE_WRITE for read_only_sealed) and F_SEAL_SEAL; only
 * then, when its size can no longer change, that the size is exactly the one asked
 * and every page of it is allocated (st_blocks). Each opener gets its own open file
 * description, a reopen of /proc/self/fd/<the kept fd> in cellad: O_RDONLY for READ,
 * O_RDWR for READ|WRITE; never the creator's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/macro.h"
#include "broker/calls/ipc-internal.h"
#include "broker/calls/ipc-pending.h"
#include "ipc/bus.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#define PIPE_BUFFER_DEFAULT   (64u * 1024u)   /* proto: buffer_bytes 0 */
#define PIPE_BUFFER_MAX       (1024u * 1024u) /* /proc/sys/fs/pipe-max-size's default */
#define OFFER_TIMEOUT_DEFAULT 30000u          /* proto: timeout_ms 0 */
#define OFFER_TIMEOUT_MAX     600000u
/* Entries one ipc.list reply may hold: each takes 16 bytes at least on the wire
 * (handle, kind, a name of 5 bytes or more, owner), so 4096 always fill the 64 KiB
 * body before they run out. */
#define IPC_LIST_MAX 4096u

static void audit_str(BrokerCall *c, const char *key, const char *v)
{
        broker_audit_set(c, key, json_string(v));
}

static void audit_u64(BrokerCall *c, const char *key, uint64_t v)
{
        broker_audit_set(c, key, json_integer((json_int_t)v));
}

/* Writes "<right>:<name>" into buf; NULL and -EINVAL if name is not a valid object
 * name's syntax (the owner is checked by the handler) or the right does not fit
 * CAPABILITY_RIGHT_MAX. */
static const char *name_right(char *buf, size_t size, const char *right, const char *name,
                              int *ret_error)
{
        int n;

        if (strnlen(name, IPC_NAME_MAX + 1) > IPC_NAME_MAX || !bus_topic_is_valid(name)) {
                *ret_error = -EINVAL;
                return NULL;
        }
        n = snprintf(buf, size, "%s:%s", right, name);
        if (n < 0 || (size_t)n >= size || (size_t)n >= CAPABILITY_RIGHT_MAX) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return buf;
}

static void reply_err(BrokerCall *c, int error, const char *why)
{
        broker_reply_error(c, error < 0 ? -error : error, why);
}

/* ---- kinds -------------------------------------------------------------------------- */

static const IpcKindOps pipe_ops = {
        .kind = CELLA__V1__IPC_KIND__IPC_KIND_PIPE,
        .right_name = "ipc.pipe",
        .mode_sets = IPC_MODESET(IPC_MODE_READ) | IPC_MODESET(IPC_MODE_WRITE),
};

static const IpcKindOps channel_ops = {
        .kind = CELLA__V1__IPC_KIND__IPC_KIND_CHANNEL,
        .right_name = "ipc.pipe",
        .mode_sets = IPC_MODESET(IPC_MODE_RW),
};

/* The memfd cellad keeps for a shared memory object. */
typedef struct Shm {
        int fd;
        bool read_only; /* sealed F_SEAL_WRITE: no handle or offer may have WRITE */
} Shm;

/* EINVAL if an offer of a read-only sealed shm object offers WRITE. */
static int offers_fit_shm(const Shm *s, Cella__V1__IpcOffer *const *offers, size_t n,
                          const char **ret_why)
{
        for (size_t i = 0; s->read_only && i < n; i++)
                if (offers[i]->modes & IPC_MODE_WRITE) {
                        *ret_why = "read-only sealed memory cannot be offered for writing";
                        return -EINVAL;
                }
        return 0;
}

/* A new open file description of o's memfd: O_RDONLY for READ, O_RDWR for
 * READ|WRITE (proc(5): opening /proc/self/fd/N opens the file anew). */
static int shm_handle_fd(IpcObject *o, uint32_t modes)
{
        Shm *s = ipc_object_data(o);
        char path[64];
        int fd;

        snprintf(path, sizeof path, "/proc/self/fd/%d", s->fd);
        fd = open(path, ((modes & IPC_MODE_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
        return fd < 0 ? -errno : fd;
}

static void shm_destroy(IpcObject *o)
{
        Shm *s = ipc_object_data(o);

        safe_close(s->fd);
        free(s);
}

static const IpcKindOps shm_ops = {
        .kind = CELLA__V1__IPC_KIND__IPC_KIND_SHM,
        .right_name = "ipc.shm",
        .mode_sets = IPC_MODESET(IPC_MODE_READ) | IPC_MODESET(IPC_MODE_RW),
        .handle_fd = shm_handle_fd,
        .destroy = shm_destroy,
};

/* ---- ipc.pipe_create ---------------------------------------------------------------- */

static const char *pipe_create_right(const ProtobufCMessage *req, char *buf, size_t size,
                                     int *ret_error)
{
        const Cella__V1__IpcPipeCreateRequest *m = (const void *)req;
        bool pipe = m->kind == CELLA__V1__IPC_KIND__IPC_KIND_PIPE;

        if ((pipe && m->modes != IPC_MODE_READ && m->modes != IPC_MODE_WRITE) ||
            (!pipe &&
             (m->kind != CELLA__V1__IPC_KIND__IPC_KIND_CHANNEL || m->modes != IPC_MODE_RW)) ||
            !manifest_id_is_valid(m->peer) || m->buffer_bytes > PIPE_BUFFER_MAX ||
            m->timeout_ms > OFFER_TIMEOUT_MAX) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return name_right(buf, size, "ipc.pipe", m->name, ret_error);
}

/* The second right of ipc.pipe_create: bus.send:<peer>. Offering a pipe reaches the
 * peer (an event with a name the creator chose), as a message would. */
static const char *pipe_create_also_right(const ProtobufCMessage *req, char *buf, size_t size)
{
        const Cella__V1__IpcPipeCreateRequest *m = (const void *)req;
        int n = snprintf(buf, size, "bus.send:%s", m->peer);

        return n < 0 || (size_t)n >= size ? NULL : buf;
}

static void pipe_create_handle(BrokerCall *c)
{
        const Cella__V1__IpcPipeCreateRequest *m = (const void *)c->request;
        bool is_pipe = m->kind == CELLA__V1__IPC_KIND__IPC_KIND_PIPE;
        const IpcKindOps *ops = is_pipe ? &pipe_ops : &channel_ops;
        BrokerApp *peer = broker_app_find(broker_app_broker(c->app), m->peer);
        _cleanup_close_ int mine = -1, theirs = -1;
        uint32_t peer_modes = IPC_MODE_RW;
        const char *why = NULL;
        int fds[2], err = 0, r;
        uint64_t token;
        IpcObject *o;
        IpcHandle *h;

        audit_str(c, "peer", m->peer);
        if (!peer) {
                broker_audit_set(c, "name", json_string(m->name));
                broker_reply_error(c, ENOENT, "the peer app is not running");
                return;
        }
        if (is_pipe)
                r = pipe2(fds, O_CLOEXEC);
        else
                r = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
        if (r < 0) {
                reply_err(c, errno, is_pipe ? "cannot make the pipe" : "cannot make the channel");
                return;
        }
        mine = fds[0];
        theirs = fds[1];
        if (is_pipe) {
                /* Rounded up to a page by the kernel (fcntl(2) F_SETPIPE_SZ). */
                unsigned want = m->buffer_bytes ? m->buffer_bytes : PIPE_BUFFER_DEFAULT;

                if (fcntl(fds[0], F_SETPIPE_SZ, want) < 0) {
                        reply_err(c, errno, "cannot set the pipe's capacity");
                        return;
                }
                audit_u64(c, "buffer_bytes", want);
                if (m->modes == IPC_MODE_WRITE) {
                        mine = fds[1];
                        theirs = fds[0];
                }
                peer_modes = m->modes == IPC_MODE_READ ? IPC_MODE_WRITE : IPC_MODE_READ;
        }
        o = ipc_object_create(c, ops, m->name, NULL, 0, 0, NULL, &err, &why);
        if (!o) {
                reply_err(c, err, why);
                return;
        }
        h = ipc_handle_new(c->app, o, m->modes, c->checked, &err, &why);
        if (!h) {
                ipc_object_release(o);
                reply_err(c, err, why);
                return;
        }
        /* Reached only through its offer: the name stays free for the next pipe. */
        ipc_object_destroy(o);
        r = ipc_pending_new(c->app, peer, o, peer_modes, TAKE_FD(theirs),
                            m->timeout_ms ? m->timeout_ms : OFFER_TIMEOUT_DEFAULT, &token, &why);
        if (r < 0) {
                ipc_handle_close(h, IPC_CLOSE_BY_APP);
                reply_err(c, r, why);
                return;
        }
        (void)ipc_handle_set_peer(h, m->peer);
        audit_u64(c, "token", token);
        ipc_reply_handle(c, h, TAKE_FD(mine));
}

/* ---- ipc.shm_create ----------------------------------------------------------------- */

static const char *shm_create_right(const ProtobufCMessage *req, char *buf, size_t size,
                                    int *ret_error)
{
        const Cella__V1__IpcShmCreateRequest *m = (const void *)req;

        if (m->size_bytes == 0 || m->size_bytes > (uint64_t)INT64_MAX) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return name_right(buf, size, "ipc.shm", m->name, ret_error);
}

/* True if fd's /proc link names a memfd ("/memfd:<name> (deleted)", memfd_create(2)). */
static bool is_memfd_link(int fd)
{
        char path[64], target[64];
        ssize_t n;

        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof target - 1);
        if (n < 0)
                return false;
        target[n] = '\0';
        return strncmp(target, "/memfd:", 7) == 0;
}

/*
 * The checks and seals of docs/ipc.md "Shared memory" on fd, the creator's memfd.
 * 0, or -errno with *ret_why (static English).
 */
static int shm_vet(int fd, uint64_t size, bool read_only, const char **ret_why)
{
        long page = sysconf(_SC_PAGESIZE);
        int seals, add;
        struct stat st;

        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                *ret_why = "the fd is not a memfd (not a regular file)";
                return -EINVAL;
        }
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || !is_memfd_link(fd)) {
                *ret_why = "the fd is not a memfd";
                return -EINVAL;
        }
        if (seals & ~F_SEAL_EXEC) {
                *ret_why = "the memfd is sealed already, or was made without MFD_ALLOW_SEALING";
                return -EINVAL;
        }
        /* Before the seals: F_SEAL_EXEC forbids changing the exec bits, and 0600 has
         * none (a memfd made with MFD_NOEXEC_SEAL is 0666 already without them). */
        if (fchmod(fd, 0600) < 0) {
                *ret_why = "cannot restrict the memfd's mode";
                return -errno;
        }
        add = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_EXEC;
        if (read_only)
                add |= F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;
        if (fcntl(fd, F_ADD_SEALS, add) < 0) {
                int r = -errno;

                *ret_why = r == -EBUSY ? "the memfd has shared writable mappings: unmap them "
                                         "before registering it read-only"
                                       : "cannot seal the memfd";
                return r;
        }
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL) < 0) {
                *ret_why = "cannot seal the memfd";
                return -errno;
        }
        /* Sealed: the size and the blocks can no longer grow or shrink under us. */
        if (fstat(fd, &st) < 0) {
                *ret_why = "cannot stat the memfd";
                return -errno;
        }
        if ((uint64_t)st.st_size != size) {
                *ret_why = "the memfd's size is not size_bytes";
                return -EINVAL;
        }
        /* st_blocks counts 512-byte units (stat(2)); every page must be there. */
        if ((uint64_t)st.st_blocks * 512u <
            (size + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page) {
                *ret_why = "not every page of the memfd is allocated: fallocate() it first";
                return -EINVAL;
        }
        return 0;
}

static void shm_create_handle(BrokerCall *c)
{
        const Cella__V1__IpcShmCreateRequest *m = (const void *)c->request;
        const char *why = NULL;
        IpcObject *o;
        IpcHandle *h;
        Shm *s;
        int err = 0, r;

        audit_u64(c, "size_bytes", m->size_bytes);
        broker_audit_set(c, "read_only_sealed", json_boolean(m->read_only_sealed));
        /* The layer's name and quota checks first: a refused call seals nothing. */
        s = calloc(1, sizeof *s);
        if (!s) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        s->fd = -1;
        s->read_only = m->read_only_sealed;
        err = offers_fit_shm(s, m->offers, m->n_offers, &why);
        if (err < 0) {
                free(s);
                reply_err(c, err, why);
                return;
        }
        o = ipc_object_create(c, &shm_ops, m->name, m->offers, m->n_offers, m->size_bytes, s, &err,
                              &why);
        if (!o) {
                free(s);
                reply_err(c, err, why);
                return;
        }
        r = shm_vet(c->fds[0], m->size_bytes, m->read_only_sealed, &why);
        if (r < 0) {
                ipc_object_release(o);
                reply_err(c, r, why);
                return;
        }
        s->fd = c->fds[0];
        c->fds[0] = -1;
        ipc_object_set_size(o, m->size_bytes);
        h = ipc_handle_new(c->app, o, m->read_only_sealed ? IPC_MODE_READ : IPC_MODE_RW, c->checked,
                           &err, &why);
        if (!h) {
                ipc_object_release(o);
                reply_err(c, err, why);
                return;
        }
        ipc_reply_handle(c, h, -1);
}

/* ---- ipc.shm_open ------------------------------------------------------------------- */

static const char *shm_open_right(const ProtobufCMessage *req, char *buf, size_t size,
                                  int *ret_error)
{
        const Cella__V1__IpcOpenRequest *m = (const void *)req;

        if (m->modes != IPC_MODE_READ && m->modes != IPC_MODE_RW) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return name_right(buf, size, "ipc.shm", m->name, ret_error);
}

/* Opens o for the caller of c with modes: a handle and its own fd, or the refusal. */
static void open_reply(BrokerCall *c, IpcObject *o, uint32_t modes, const CapabilityRight *right)
{
        const char *why = NULL;
        IpcHandle *h;
        int err = 0, fd;

        h = ipc_handle_new(c->app, o, modes, right, &err, &why);
        if (!h) {
                reply_err(c, err, why);
                return;
        }
        fd = ipc_object_ops(o)->handle_fd(o, modes);
        if (fd < 0) {
                ipc_handle_close(h, IPC_CLOSE_BY_APP);
                reply_err(c, fd, "cannot open the object");
                return;
        }
        ipc_reply_handle(c, h, fd);
}

static void shm_open_handle(BrokerCall *c)
{
        const Cella__V1__IpcOpenRequest *m = (const void *)c->request;
        const char *why = NULL;
        IpcObject *o;
        int err = 0;

        o = ipc_object_open(c, CELLA__V1__IPC_KIND__IPC_KIND_SHM, m->name, m->modes, &err, &why);
        if (!o) {
                reply_err(c, err, why);
                return;
        }
        /* Not even its creator writes sealed read-only memory again. */
        if ((m->modes & IPC_MODE_WRITE) && ((Shm *)ipc_object_data(o))->read_only) {
                broker_reply_error(c, EPERM, "the shared memory is sealed read-only");
                return;
        }
        open_reply(c, o, m->modes, c->checked);
}

/* ---- ipc.accept --------------------------------------------------------------------- */

static const char *accept_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__IpcAcceptRequest *m = (const void *)req;

        if (m->token == 0)
                *ret_error = -EINVAL;
        /* The right depends on what the token names: the handler decides it. */
        return NULL;
}

static void accept_handle(BrokerCall *c)
{
        const Cella__V1__IpcAcceptRequest *m = (const void *)c->request;
        IpcPending *p =
                ipc_pending_find(ipc_registry_of(broker_app_broker(c->app)), c->app, m->token);
        char text[CAPABILITY_RIGHT_MAX];
        const char *why = NULL;
        CapabilityRight right;
        const IpcKindOps *ops;
        size_t refused;
        IpcHandle *h;
        int r, err = 0, fd;

        audit_u64(c, "token", m->token);
        if (!p) {
                broker_reply_error(c, ENOENT,
                                   "no such offer (accepted, expired, or its sender "
                                   "exited)");
                return;
        }
        ops = ipc_object_ops(p->o);
        audit_str(c, "name", ipc_object_name(p->o));
        audit_str(c, "kind", ipc_kind_name(ops->kind));
        audit_str(c, "from", broker_app_id(p->from));
        audit_u64(c, "modes", p->modes);
        /* The accepting app's own right for the name: the handle is made under it. */
        snprintf(text, sizeof text, "%s:%s", ops->right_name, ipc_object_name(p->o));
        if (capability_right_parse(text, &right, NULL) < 0)
                right.cap = NULL;
        c->right = text;
        r = broker_app_take(c->app, &right, 1, &refused, &why);
        if (r == -EACCES || r == -EPERM) {
                broker_reply_error(c, -r, why);
                return;
        }
        if (r < 0) {
                broker_reply_error(c, EIO, "the grants database failed");
                return;
        }
        /* A quota refusal keeps the offer: the app may close a handle and retry. */
        h = ipc_handle_new(c->app, p->o, p->modes, &right, &err, &why);
        if (!h) {
                reply_err(c, err, why);
                return;
        }
        if (p->fd >= 0)
                ipc_pending_end(p, &fd);
        else {
                fd = ops->handle_fd(p->o, p->modes);
                if (fd < 0) {
                        ipc_handle_close(h, IPC_CLOSE_BY_APP);
                        reply_err(c, fd, "cannot open the object");
                        return;
                }
                ipc_pending_end(p, NULL);
        }
        if (ops->kind == CELLA__V1__IPC_KIND__IPC_KIND_PIPE ||
            ops->kind == CELLA__V1__IPC_KIND__IPC_KIND_CHANNEL)
                (void)ipc_handle_set_peer(h, ipc_object_owner(ipc_handle_object(h)));
        ipc_reply_handle(c, h, fd);
}

/* ---- ipc.pass ----------------------------------------------------------------------- */

static const char *pass_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__IpcPassRequest *m = (const void *)req;
        int n;

        if (m->handle == 0 || m->modes == 0 || m->modes > IPC_MODE_RW ||
            !manifest_id_is_valid(m->to)) {
                *ret_error = -EINVAL;
                return NULL;
        }
        n = snprintf(buf, size, "bus.send:%s", m->to);
        if (n < 0 || (size_t)n >= size) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return buf;
}

static void pass_handle(BrokerCall *c)
{
        const Cella__V1__IpcPassRequest *m = (const void *)c->request;
        Cella__V1__IpcPassReply reply = CELLA__V1__IPC_PASS_REPLY__INIT;
        IpcHandle *h = ipc_handle_get(c->app, m->handle, CELLA__V1__IPC_KIND__IPC_KIND_UNSPECIFIED);
        BrokerApp *to = broker_app_find(broker_app_broker(c->app), m->to);
        const IpcKindOps *ops;
        const char *why = NULL;
        IpcObject *o;
        int r;

        audit_u64(c, "handle", m->handle);
        audit_str(c, "to", m->to);
        audit_u64(c, "modes", m->modes);
        if (!h) {
                broker_reply_error(c, ENOENT, "no such handle");
                return;
        }
        o = ipc_handle_object(h);
        ops = ipc_object_ops(o);
        audit_str(c, "name", ipc_object_name(o));
        audit_str(c, "kind", ipc_kind_name(ops->kind));
        audit_u64(c, "from_modes", ipc_handle_modes(h));
        if ((m->modes & ~ipc_handle_modes(h)) != 0) {
                broker_reply_error(c, EPERM, "a handle passed on may only keep or lose modes");
                return;
        }
        if (!(ops->mode_sets & IPC_MODESET(m->modes))) {
                broker_reply_error(c, EINVAL, "the modes are not a mode set of this kind");
                return;
        }
        if (!ops->handle_fd) {
                broker_reply_error(c, EINVAL,
                                   "a pipe or channel end cannot be passed on: the "
                                   "kernel keeps no copy of it");
                return;
        }
        if (ipc_object_destroyed(o)) {
                broker_reply_error(c, ENOENT, "the object was destroyed");
                return;
        }
        if (!to) {
                broker_reply_error(c, ENOENT, "the app is not running");
                return;
        }
        r = ipc_pending_new(c->app, to, o, m->modes, -1, OFFER_TIMEOUT_DEFAULT, &reply.token, &why);
        if (r < 0) {
                reply_err(c, r, why);
                return;
        }
        audit_u64(c, "token", reply.token);
        broker_reply(c, &reply.base, NULL, 0);
}

/* ---- ipc.close, ipc.offer, ipc.list ------------------------------------------------- */

static const char *handle_only_right(const ProtobufCMessage *req, char *buf, size_t size,
                                     int *ret_error)
{
        return NULL;
}

static void close_handle(BrokerCall *c)
{
        const Cella__V1__IpcCloseRequest *m = (const void *)c->request;
        Cella__V1__IpcCloseReply reply = CELLA__V1__IPC_CLOSE_REPLY__INIT;
        IpcHandle *h = ipc_handle_get(c->app, m->handle, CELLA__V1__IPC_KIND__IPC_KIND_UNSPECIFIED);
        IpcObject *o;

        audit_u64(c, "handle", m->handle);
        broker_audit_set(c, "destroy", json_boolean(m->destroy));
        if (!h) {
                broker_reply_error(c, ENOENT, "no such handle");
                return;
        }
        o = ipc_handle_object(h);
        audit_str(c, "name", ipc_object_name(o));
        if (m->destroy) {
                if (strcmp(ipc_object_owner(o), broker_app_id(c->app)) != 0) {
                        broker_reply_error(c, EPERM, "only the creator destroys an object");
                        return;
                }
                ipc_object_set_persistent(o, false);
                ipc_object_destroy(o); /* held by h: not freed here */
        }
        ipc_handle_close(h, IPC_CLOSE_BY_APP);
        broker_reply(c, &reply.base, NULL, 0);
}

static void offer_handle(BrokerCall *c)
{
        const Cella__V1__IpcOfferRequest *m = (const void *)c->request;
        Cella__V1__IpcOfferReply reply = CELLA__V1__IPC_OFFER_REPLY__INIT;
        IpcHandle *h = ipc_handle_get(c->app, m->handle, CELLA__V1__IPC_KIND__IPC_KIND_UNSPECIFIED);
        const char *why = NULL;
        IpcObject *o;
        int r;

        audit_u64(c, "handle", m->handle);
        audit_u64(c, "offers", m->n_offers);
        if (!h) {
                broker_reply_error(c, ENOENT, "no such handle");
                return;
        }
        o = ipc_handle_object(h);
        audit_str(c, "name", ipc_object_name(o));
        if (strcmp(ipc_object_owner(o), broker_app_id(c->app)) != 0) {
                broker_reply_error(c, EPERM, "only the creator offers an object");
                return;
        }
        r = ipc_offers_check(ipc_object_ops(o), m->offers, m->n_offers, &why);
        if (r == 0 && ipc_object_ops(o) == &shm_ops)
                r = offers_fit_shm(ipc_object_data(o), m->offers, m->n_offers, &why);
        if (r == 0)
                r = ipc_object_set_offers(o, m->offers, m->n_offers, &why);
        if (r < 0) {
                reply_err(c, r, why);
                return;
        }
        broker_reply(c, &reply.base, NULL, 0);
}

/* The bytes a repeated field entry of r takes in IpcListReply: tag, length, body. */
static size_t list_entry_size(const Cella__V1__IpcHandleReply *r)
{
        size_t n = protobuf_c_message_get_packed_size(&r->base);

        return 1 + 3 + n;
}

static void list_handle(BrokerCall *c)
{
        static Cella__V1__IpcHandleReply entries[IPC_LIST_MAX];
        static Cella__V1__IpcHandleReply *ptrs[IPC_LIST_MAX];
        Cella__V1__IpcListReply reply = CELLA__V1__IPC_LIST_REPLY__INIT;
        Cella__V1__IpcUsage usage = CELLA__V1__IPC_USAGE__INIT;
        IpcAppState *st = ipc_app_state(c->app, false);
        size_t n = 0, body = 64; /* the usage and the field tags */

        ipc_usage(c->app, &usage);
        /* Newest first, as many as fit in one reply; usage.handles says how many
         * there are. */
        for (IpcHandle *h = ipc_app_handles(st); h && n < IPC_LIST_MAX;
             h = ipc_handle_next_in_app(h)) {
                size_t size;

                entries[n] = (Cella__V1__IpcHandleReply)CELLA__V1__IPC_HANDLE_REPLY__INIT;
                ipc_handle_describe(h, &entries[n]);
                size = list_entry_size(&entries[n]);
                if (body + size > CHANNEL_BODY_MAX)
                        break;
                body += size;
                ptrs[n] = &entries[n];
                n++;
        }
        reply.n_handles = n;
        reply.handles = ptrs;
        reply.usage = &usage;
        audit_u64(c, "handles", n);
        broker_reply(c, &reply.base, NULL, 0);
}

const BrokerCallDef broker_calls_ipc[] = {
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_PIPE_CREATE,
                .right_of = pipe_create_right,
                .handle = pipe_create_handle,
                .also_right_of = pipe_create_also_right,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_SHM_CREATE,
                .right_of = shm_create_right,
                .handle = shm_create_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_SHM_OPEN,
                .right_of = shm_open_right,
                .handle = shm_open_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_ACCEPT,
                .right_of = accept_right,
                .handle = accept_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_PASS,
                .right_of = pass_right,
                .handle = pass_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_CLOSE,
                .right_of = handle_only_right,
                .handle = close_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_OFFER,
                .right_of = handle_only_right,
                .handle = offer_handle,
        },
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_IPC_LIST,
                .right_of = handle_only_right,
                .handle = list_handle,
        },
        {0},
};
