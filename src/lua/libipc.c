/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.ipc: shared memory, pipes and channels, semaphores and message queues
 * between apps, each a handle the kernel hands out against the app's ipc.* rights
 * (docs/lua-api.md "cella.ipc", docs/ipc.md, proto/cella.proto "ipc").
 *
 * Every object is a userdata of its own class holding the kernel's handle number
 * and the fd passed with it; the fd number is never shown to the script, so a
 * script can do with an object exactly what its methods allow and no more (in a
 * packed host every app's objects live in one process: Lua is the wall there). The
 * calls are the wire messages of the proto, sent on the app's channel as every
 * cella.* kernel call is (kernel.c) and decoded here with their own descriptors.
 * Waits on an fd (a pipe's data, a semaphore) go through the host's epoll set
 * (iowait.c): they suspend only the calling task. A queue's blocking receive is
 * the kernel's own pending call: the task waits for its reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "wire/wire.h"
#include "lib/client.h"
#include "lua/host.h"
#include "lua/ipc-buf.h"
#include "lua/lua-modules.h"

#define OP(x)   ((uint16_t)CELLA__V1__OPCODE__OPCODE_##x)
#define KIND(x) CELLA__V1__IPC_KIND__IPC_KIND_##x
#define M_READ  ((uint32_t)CELLA__V1__IPC_MODE__IPC_MODE_READ)
#define M_WRITE ((uint32_t)CELLA__V1__IPC_MODE__IPC_MODE_WRITE)

#define SHM_MT   "cella.ipc.shm"
#define PIPE_MT  "cella.ipc.pipe"
#define SEM_MT   "cella.ipc.sem"
#define QUEUE_MT "cella.ipc.queue"

/* Bounds (docs/lua-api.md "cella.ipc"; the kernel's in proto/cella.proto). */
#define IPC_NAME_MAX            255u
#define IPC_OFFERS_MAX          16u
#define IPC_TIMEOUT_MAX_S       600.0
#define IPC_READ_DEFAULT        65536u
#define IPC_READ_MAX            (1024u * 1024u)
#define IPC_BATCH_MAX           1024u
#define IPC_QMSG_MAX            65000u
#define IPC_PIPE_TIMEOUT_MAX_MS 600000u
#define SHM_FALLOCATE_STEP      ((off_t)16 << 20)

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U /* Linux 6.3, include/uapi/linux/memfd.h */
#endif

static const char key_objects = 0; /* registry: handle -> object (weak values) */
static const char key_state = 0;   /* registry: the CLuaIpc userdata */

/* One object: its class says which of the fields below mean something. */
typedef struct IpcObj {
        uint64_t handle; /* the kernel's handle number; 0: none (closed, or revoked) */
        uint32_t gen;    /* CLuaIpc.generation when it was made */
        int kind;        /* Cella__V1__IpcKind */
        uint32_t modes;  /* IPC_MODE_* bits */
        int fd;          /* the handle's fd, or -1 */
        bool closed;     /* closed by the app: no method works any more */
        /* shm: the mapping (PROT_READ, or PROT_READ|PROT_WRITE with M_WRITE) */
        uint8_t *map;
        size_t size;
        size_t charged; /* bytes charged to the app's memory cap (shm it created) */
        /* pipe, channel, sem: waits on fd in the host's epoll set */
        CLuaFdWatch watch;
        CLuaWait *rwait, *wwait;
        /* queue: the most bytes of one message */
        uint64_t msg_max;
        char revoked[32]; /* the kernel closed the handle (IPC_CLOSED): its reason */
        char name[IPC_NAME_MAX + 1];
        char owner[CELLA_ID_MAX + 1];
        char peer[CELLA_ID_MAX + 1];
} IpcObj;

/* luaL_error() with printf's formats (lua_pushfstring knows only a few): at most
 * 511 bytes of message. Does not return. */
static int ipc_err(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ipc_err(lua_State *L, const char *fmt, ...)
{
        char buf[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        return luaL_error(L, "%s", buf);
}

static const char *kind_word(int kind)
{
        switch (kind) {
        case KIND(PIPE):
                return "pipe";
        case KIND(CHANNEL):
                return "channel";
        case KIND(SHM):
                return "shm";
        case KIND(SEM):
                return "sem";
        case KIND(QUEUE):
                return "queue";
        default:
                return "unknown";
        }
}

static const char *modes_word(uint32_t m)
{
        switch (m & (M_READ | M_WRITE)) {
        case M_READ:
                return "r";
        case M_WRITE:
                return "w";
        case M_READ | M_WRITE:
                return "rw";
        default:
                return "";
        }
}

/* Modes argument i ("r", "w", "rw"), or dflt when it is none or nil. */
static uint32_t check_modes(lua_State *L, int i, uint32_t dflt)
{
        const char *s;

        if (lua_isnoneornil(L, i))
                return dflt;
        s = luaL_checkstring(L, i);
        if (strcmp(s, "r") == 0)
                return M_READ;
        if (strcmp(s, "w") == 0)
                return M_WRITE;
        if (strcmp(s, "rw") == 0)
                return M_READ | M_WRITE;
        return (uint32_t)luaL_argerror(L, i, "mode must be \"r\", \"w\" or \"rw\"");
}

/* A timeout argument i in seconds, 0..600 (a number, not NaN); none or nil: dflt
 * (-1: wait without end). Returns nanoseconds, 0 for "do not wait". */
static int64_t check_timeout(lua_State *L, int i, int64_t dflt)
{
        lua_Number t;

        if (lua_isnoneornil(L, i))
                return dflt;
        t = luaL_checknumber(L, i);
        luaL_argcheck(L, t >= 0 && t <= IPC_TIMEOUT_MAX_S, i,
                      "timeout out of range 0..600 seconds");
        return (int64_t)(t * 1e9);
}

/* ---- module state, objects --------------------------------------------------- */

static CLuaIpc *ipc_state(lua_State *L)
{
        return clua_app_of(L)->ipc;
}

/* Sends IPC_CLOSE for handle without waiting for the answer. Returns 0 or -errno
 * (-EBUSY/-EAGAIN: not now). */
static int send_close(CLuaApp *app, uint64_t handle)
{
        Cella__V1__IpcCloseRequest req = CELLA__V1__IPC_CLOSE_REQUEST__INIT;

        if (!app->cella || app->channel_broken || app->ended)
                return 0; /* the kernel dropped every handle with the channel */
        req.handle = handle;
        return client_call_async(app->cella, OP(IPC_CLOSE), &req.base, NULL, NULL, NULL);
}

/* Sends the closes that had to wait (CLuaIpc.deferred). */
static void flush_deferred(CLuaApp *app)
{
        CLuaIpc *s = app->ipc;

        while (s && s->n_deferred) {
                int r = send_close(app, s->deferred[s->n_deferred - 1]);

                if (r == -EBUSY || r == -EAGAIN)
                        return;
                s->n_deferred--;
        }
}

/* A handle made before the kernel restarted names nothing (or, in the new kernel's
 * numbering, another of the app's handles): forgotten. */
static void obj_sync(CLuaApp *app, IpcObj *o)
{
        if (o->handle && app->ipc && o->gen != app->ipc->generation) {
                o->handle = 0;
                snprintf(o->revoked, sizeof o->revoked, "kernel-restarted");
        }
}

/* Lets go of o's handle (IPC_CLOSE, deferred if it cannot be sent now). */
static void drop_handle(CLuaApp *app, IpcObj *o)
{
        uint64_t h;
        int r;

        obj_sync(app, o);
        h = o->handle;
        o->handle = 0;
        if (h == 0)
                return;
        r = send_close(app, h);
        if ((r == -EBUSY || r == -EAGAIN) && app->ipc &&
            app->ipc->n_deferred < CLUA_IPC_DEFERRED_MAX)
                app->ipc->deferred[app->ipc->n_deferred++] = h;
        /* Else the handle stays the kernel's until the app ends (counted in
         * ipc.list()'s usage.handles): the channel is full of calls. */
}

/* Frees what o holds locally: its waits, its fd, its mapping, its charge. */
static void release_local(CLuaApp *app, IpcObj *o)
{
        clua_fd_watch_stop(&o->watch);
        if (o->map) {
                (void)munmap(o->map, o->size);
                o->map = NULL;
        }
        if (o->fd >= 0) {
                close(o->fd);
                o->fd = -1;
        }
        if (o->charged) {
                app->alloc.used -= o->charged;
                o->charged = 0;
        }
        /* Tasks waiting on it go on, and see it closed. */
        clua_io_wake(&o->rwait);
        clua_io_wake(&o->wwait);
}

static int obj_gc(lua_State *L)
{
        IpcObj *o = lua_touserdata(L, 1);
        CLuaApp *app = clua_app_of(L);

        if (!o)
                return 0;
        release_local(app, o);
        drop_handle(app, o);
        o->closed = true;
        return 0;
}

/* The object at i if it is one of cella.ipc's classes, else NULL. */
static IpcObj *test_obj(lua_State *L, int i)
{
        static const char *const mts[] = {SHM_MT, PIPE_MT, SEM_MT, QUEUE_MT};
        IpcObj *o = NULL;

        for (size_t k = 0; k < sizeof mts / sizeof mts[0] && !o; k++)
                o = luaL_testudata(L, i, mts[k]);
        if (o)
                obj_sync(clua_app_of(L), o);
        return o;
}

/* The object at i of any ipc class (kind_mask: the kinds accepted, bits 1 << kind),
 * not closed; fname names the method in errors. */
static IpcObj *check_obj(lua_State *L, int i, unsigned kind_mask, const char *fname)
{
        IpcObj *o = test_obj(L, i);

        if (!o || !(kind_mask & (1u << o->kind)))
                ipc_err(L, "%s: bad argument #%d (not a cella.ipc object of this kind)", fname, i);
        if (o->closed)
                ipc_err(L, "%s: the %s %s is closed", fname, kind_word(o->kind), o->name);
        return o;
}

#define ANY_KIND                                                                                   \
        ((1u << KIND(PIPE)) | (1u << KIND(CHANNEL)) | (1u << KIND(SHM)) | (1u << KIND(SEM)) |      \
         (1u << KIND(QUEUE)))

static void watch_ready(CLuaFdWatch *w, uint32_t ev);

/* Pushes a new object of kind (no handle, no fd yet), of its class. */
static IpcObj *obj_push(lua_State *L, int kind)
{
        IpcObj *o = lua_newuserdatauv(L, sizeof(*o), 0);

        memset(o, 0, sizeof(*o));
        o->fd = -1;
        o->kind = kind;
        o->watch.fd = -1;
        o->watch.app = clua_app_of(L);
        o->watch.cb = watch_ready;
        o->watch.userdata = o;
        switch (kind) {
        case KIND(SHM):
                luaL_setmetatable(L, SHM_MT);
                break;
        case KIND(PIPE):
        case KIND(CHANNEL):
                luaL_setmetatable(L, PIPE_MT);
                break;
        case KIND(SEM):
                luaL_setmetatable(L, SEM_MT);
                break;
        default:
                luaL_setmetatable(L, QUEUE_MT);
                break;
        }
        return o;
}

/* Records the object at index i under its handle (for IPC_CLOSED). */
static void obj_register(lua_State *L, int i, IpcObj *o)
{
        i = lua_absindex(L, i);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &key_objects);
        lua_pushvalue(L, i);
        lua_rawseti(L, -2, (lua_Integer)o->handle);
        lua_pop(L, 1);
}

/* ---- kernel calls ------------------------------------------------------------ */

/*
 * Sends req as opcode, with fd (-1: none), on the app's channel and waits for the
 * reply (the calling task is suspended); decode pushes the results. decode sees the
 * caller's stack and on top of it the generation of the call (CLuaIpc.generation
 * when it was sent): obj_from_reply() reads it there, so decode functions call it
 * before they push anything. The return of a lua_CFunction.
 */
static int ipc_call(lua_State *L, const char *fname, uint16_t opcode, const ProtobufCMessage *req,
                    int fd, int (*decode)(lua_State *, CellaReply *))
{
        CLuaApp *app = clua_app_of(L);
        Cella *c = clua_kernel(L, fname);
        size_t n = protobuf_c_message_get_packed_size(req);
        uint8_t *buf;
        uint64_t id;
        int r;

        flush_deferred(app);
        if (n > CELLA_BODY_MAX)
                return ipc_err(L, "%s: the request of %zu bytes is larger than a frame (%u)", fname,
                               n, CELLA_BODY_MAX);
        buf = malloc(n ?: 1);
        if (!buf)
                return clua_doom(L, CLUA_MEMORY);
        protobuf_c_message_pack(req, buf);
        r = cella_call_async(c, opcode, buf, n, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0,
                             clua_kernel_reply, app, &id);
        if (r == -EAGAIN || r == -EBUSY) {
                (void)clua_kernel_dispatch(app);
                r = cella_call_async(c, opcode, buf, n, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0,
                                     clua_kernel_reply, app, &id);
        }
        free(buf);
        if (r < 0)
                return clua_kernel_error(L, fname, r, NULL);
        /* The generation the call was sent in, last on the stack decode sees: a
         * handle in its reply is of that kernel, even if the reply is decoded only
         * after an EVENT_KERNEL_RESTARTED that came behind it. */
        lua_pushinteger(L, app->ipc ? app->ipc->generation : 0);
        return clua_await(L, id, decode);
}

/* Raises the kernel's error of reply, as "<fname>: <strerror>: <message>". */
static void reply_check(lua_State *L, CellaReply *reply, const char *fname)
{
        if (reply->error == -EOPNOTSUPP || reply->error == -ENOSYS)
                clua_kernel_error(L, fname, reply->error, "this kernel has no ipc calls");
        if (reply->error)
                clua_kernel_error(L, fname, reply->error, reply->error_message);
}

/* Unpacks reply's body as d, or raises. */
static void *reply_unpack(lua_State *L, CellaReply *reply, const ProtobufCMessageDescriptor *d,
                          const char *fname)
{
        ProtobufCMessage *m;

        reply_check(L, reply, fname);
        m = protobuf_c_message_unpack(d, NULL, reply->body_len, reply->body);
        if (!m)
                ipc_err(L, "%s: the kernel's reply does not decode", fname);
        return m;
}

/* Fills o from a handle reply (copies its strings, bounded). */
static void obj_fill(IpcObj *o, const Cella__V1__IpcHandleReply *r, uint32_t app_gen)
{
        o->handle = r->handle;
        o->gen = app_gen;
        o->kind = r->kind;
        o->modes = r->modes;
        snprintf(o->name, sizeof o->name, "%s", r->name ?: "");
        snprintf(o->owner, sizeof o->owner, "%s", r->owner ?: "");
        snprintf(o->peer, sizeof o->peer, "%s", r->peer ?: "");
}

/* Takes the fd of reply into o (the box exists already: a raise cannot leak it). */
static void take_fd(lua_State *L, IpcObj *o, CellaReply *reply, const char *fname)
{
        if (reply->n_fds < 1 || reply->fds[0] < 0)
                ipc_err(L, "%s: the kernel's reply carries no fd", fname);
        o->fd = reply->fds[0];
        reply->fds[0] = -1;
}

/*
 * Maps shm object o's fd (size: what the kernel told), writable with M_WRITE.
 * Refuses an fd that is not sealed against shrinking or not of that size: a mapping
 * of memory that could shrink under it would let another app kill this process
 * (SIGBUS), which in a packed host is every app of the group.
 */
static void shm_map(lua_State *L, IpcObj *o, uint64_t size, const char *fname)
{
        struct stat st;
        int seals = fcntl(o->fd, F_GET_SEALS);
        void *p;

        if (seals < 0 || !(seals & F_SEAL_SHRINK))
                ipc_err(L, "%s: the shared memory %s is not sealed against shrinking", fname,
                        o->name);
        if (fstat(o->fd, &st) < 0 || st.st_size <= 0 || (uint64_t)st.st_size != size ||
            (uint64_t)st.st_size > SIZE_MAX)
                ipc_err(L, "%s: the shared memory %s is not of the size the kernel gave", fname,
                        o->name);
        p = mmap(NULL, (size_t)st.st_size, PROT_READ | ((o->modes & M_WRITE) ? PROT_WRITE : 0),
                 MAP_SHARED, o->fd, 0);
        if (p == MAP_FAILED)
                ipc_err(L, "%s: mmap: %s", fname, strerror(errno));
        o->map = p;
        o->size = (size_t)st.st_size;
}

/* Sets o's fd (a pipe's, a channel's) non-blocking. */
static void set_nonblock(lua_State *L, IpcObj *o, const char *fname)
{
        int fl = fcntl(o->fd, F_GETFL);

        if (fl < 0 || fcntl(o->fd, F_SETFL, fl | O_NONBLOCK) < 0)
                ipc_err(L, "%s: %s", fname, strerror(errno));
}

/*
 * Builds the object of a handle reply with its fd (accept, open, create): the box
 * at index box if > 0 (made before the call, of the kind asked for), else a new one
 * of the reply's kind. Its modes are the reply's within mode_mask. Leaves the
 * object on top.
 */
static IpcObj *obj_from_reply(lua_State *L, CellaReply *reply, int box, uint32_t mode_mask,
                              const char *fname)
{
        uint32_t gen = (uint32_t)lua_tointeger(L, -1); /* ipc_call() pushed it */
        Cella__V1__IpcHandleReply *r =
                reply_unpack(L, reply, &cella__v1__ipc_handle_reply__descriptor, fname);
        int kind = r->kind;
        uint64_t size = r->size_bytes;
        IpcObj *o;

        if (kind < KIND(PIPE) || kind > KIND(QUEUE) ||
            (box > 0 && ((IpcObj *)lua_touserdata(L, box))->kind != kind)) {
                protobuf_c_message_free_unpacked(&r->base, NULL);
                ipc_err(L, "%s: the kernel's reply names another kind of object", fname);
        }
        if (box > 0) {
                lua_pushvalue(L, box);
                o = lua_touserdata(L, -1);
        } else
                o = obj_push(L, kind);
        /* The handle is the app's from here: the box's __gc closes it. */
        obj_fill(o, r, gen);
        o->modes &= mode_mask;
        protobuf_c_message_free_unpacked(&r->base, NULL);
        obj_register(L, -1, o);
        if (kind == KIND(QUEUE)) {
                o->msg_max = size;
                /* The queue's eventfd: cella.ipc waits with the kernel's blocking
                 * receive, never on it. */
                if (reply->n_fds >= 1 && reply->fds[0] >= 0) {
                        close(reply->fds[0]);
                        reply->fds[0] = -1;
                }
                return o;
        }
        if (o->fd < 0)
                take_fd(L, o, reply, fname);
        if (kind == KIND(SHM))
                shm_map(L, o, size, fname);
        /* Never a blocking fd in the host's thread (a packed host's every app would
         * wait): pipes and channels are set non-blocking (their open file
         * description: a holder the handle was passed to shares it), a
         * semaphore's eventfd is so already (EFD_NONBLOCK), and made so if not. */
        if (kind == KIND(PIPE) || kind == KIND(CHANNEL) || kind == KIND(SEM))
                set_nonblock(L, o, fname);
        return o;
}

/* ---- offers ------------------------------------------------------------------ */

/* Reads the offers table at index t (none/nil: no offers) into a request's array,
 * kept in a userdata pushed on the stack (its strings are the table's). */
static Cella__V1__IpcOffer **check_offers(lua_State *L, int t, size_t *ret_n)
{
        Cella__V1__IpcOffer *v, **pv;
        lua_Integer n;

        *ret_n = 0;
        if (lua_isnoneornil(L, t)) {
                lua_pushnil(L);
                return NULL;
        }
        luaL_checktype(L, t, LUA_TTABLE);
        n = luaL_len(L, t);
        luaL_argcheck(L, n >= 0 && n <= IPC_OFFERS_MAX, t,
                      "at most 16 offers (the kernel's limit)");
        pv = lua_newuserdatauv(L, (size_t)n * (sizeof(*v) + sizeof(*pv)) + 1, 0);
        v = (Cella__V1__IpcOffer *)(void *)(pv + n);
        for (lua_Integer i = 1; i <= n; i++) {
                Cella__V1__IpcOffer *o = &v[i - 1];
                bool has_app, has_topic;

                *o = (Cella__V1__IpcOffer)CELLA__V1__IPC_OFFER__INIT;
                if (lua_geti(L, t, i) != LUA_TTABLE)
                        ipc_err(L, "cella.ipc: offer %d is not a table", (int)i);
                has_app = lua_getfield(L, -1, "app") != LUA_TNIL;
                has_topic = lua_getfield(L, -2, "topic") != LUA_TNIL;
                if (has_app == has_topic)
                        ipc_err(L, "cella.ipc: offer %d needs exactly one of app and topic",
                                (int)i);
                {
                        size_t len;
                        const char *s = lua_tolstring(L, has_app ? -2 : -1, &len);

                        if (!s || len == 0 || len > CELLA_TOPIC_MAX || strlen(s) != len)
                                ipc_err(L,
                                        "cella.ipc: offer %d: %s must be a string of 1..255 "
                                        "bytes without NUL",
                                        (int)i, has_app ? "app" : "topic");
                        if (has_app)
                                o->app = (char *)s;
                        else
                                o->topic = (char *)s;
                        o->app = o->app ?: "";
                        o->topic = o->topic ?: "";
                }
                lua_getfield(L, -3, "modes");
                {
                        const char *m = lua_tostring(L, -1);

                        if (!m || (strcmp(m, "r") && strcmp(m, "w") && strcmp(m, "rw")))
                                ipc_err(L,
                                        "cella.ipc: offer %d: modes must be \"r\", \"w\" "
                                        "or \"rw\"",
                                        (int)i);
                        o->modes = (m[0] == 'r' ? M_READ : 0) | (strchr(m, 'w') ? M_WRITE : 0);
                }
                /* The strings stay alive in the table at t: pop the copies. */
                lua_pop(L, 4);
                pv[i - 1] = o;
        }
        *ret_n = (size_t)n;
        return pv;
}

/* ---- shared memory ----------------------------------------------------------- */

/* decode of shm.create: the box at 6, read_only_sealed at 7. */
static int decode_shm_create(lua_State *L, CellaReply *reply)
{
        /* Mapped once the kernel sealed it: read-only if read_only_sealed (its
         * F_SEAL_FUTURE_WRITE refuses a writable mapping then). */
        (void)obj_from_reply(L, reply, 6, lua_toboolean(L, 7) ? M_READ : M_READ | M_WRITE,
                             "cella.ipc.shm.create");
        return 1;
}

/* Writes len bytes of data at offset 0 of fd (the initial contents). */
static int write_all(int fd, const char *data, size_t len)
{
        size_t off = 0;

        while (off < len) {
                ssize_t n = pwrite(fd, data + off, len - off, (off_t)off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                off += (size_t)n;
        }
        return 0;
}

/* ipc.shm.create(name, size [, {offers, read_only_sealed, data}]) -> buffer */
static int shm_create(lua_State *L)
{
        static const char fname[] = "cella.ipc.shm.create";
        Cella__V1__IpcShmCreateRequest req = CELLA__V1__IPC_SHM_CREATE_REQUEST__INIT;
        CLuaApp *app = clua_app_of(L);
        lua_Integer size = luaL_checkinteger(L, 2);
        const char *data = NULL;
        size_t data_len = 0;
        bool ro = false;
        IpcObj *o;
        int fd;

        req.name = (char *)clua_check_str(L, 1, 1, IPC_NAME_MAX, NULL);
        luaL_argcheck(L, size >= 1 && (uint64_t)size <= app->alloc.cap, 2,
                      "size out of range 1..the app's memory limit");
        lua_settop(L, 3);
        if (!lua_isnil(L, 3)) {
                luaL_checktype(L, 3, LUA_TTABLE);
                lua_getfield(L, 3, "read_only_sealed");
                ro = lua_toboolean(L, -1);
                lua_pop(L, 1);
                if (lua_getfield(L, 3, "data") != LUA_TNIL) {
                        if (lua_type(L, -1) != LUA_TSTRING)
                                return ipc_err(L, "%s: data must be a string", fname);
                        /* kept alive by the options table */
                        data = lua_tolstring(L, -1, &data_len);
                        if (data_len > (uint64_t)size)
                                return ipc_err(L,
                                               "%s: data of %zu bytes is larger than "
                                               "the size",
                                               fname, data_len);
                }
                lua_pop(L, 1);
                lua_getfield(L, 3, "offers"); /* 4 */
        } else
                lua_pushnil(L);
        req.offers = check_offers(L, 4, &req.n_offers); /* its box at 5 */
        req.size_bytes = (uint64_t)size;
        req.read_only_sealed = ro;
        /* The pages are this app's: charged to its memory cap while the buffer lives
         * (in a packed host they are the whole group's memory cgroup's). */
        if ((uint64_t)size > app->alloc.cap - app->alloc.used)
                return ipc_err(L,
                               "%s: %lld bytes do not fit in the app's memory limit (%zu "
                               "of %zu bytes in use)",
                               fname, (long long)size, app->alloc.used, app->alloc.cap);
        o = obj_push(L, KIND(SHM)); /* 6 */
        lua_pushboolean(L, ro);     /* 7 */
        fd = memfd_create("cella-ipc-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
        if (fd < 0 && errno == EINVAL) /* a kernel before 6.3 has no MFD_NOEXEC_SEAL */
                fd = memfd_create("cella-ipc-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return ipc_err(L, "%s: memfd_create: %s", fname, strerror(errno));
        o->fd = fd;
        o->modes = M_READ | M_WRITE;
        app->alloc.used += (size_t)size;
        o->charged = (size_t)size;
        if (ftruncate(fd, (off_t)size) < 0)
                return ipc_err(L, "%s: ftruncate: %s", fname, strerror(errno));
        /* Every page allocated now, in this process: charged to its memory cgroup.
         * In steps of 16 MiB with a look at the app's doom flag between two, so a
         * large one stops with the app's budget (a packed host's other apps wait). */
        for (off_t at = 0; at < (off_t)size; at += SHM_FALLOCATE_STEP) {
                off_t n = (off_t)size - at < SHM_FALLOCATE_STEP ? (off_t)size - at
                                                                : SHM_FALLOCATE_STEP;
                int r = posix_fallocate(fd, at, n);

                if (r)
                        return ipc_err(L, "%s: fallocate of %lld bytes: %s", fname, (long long)size,
                                       strerror(r));
                clua_poll(L);
        }
        if (data_len) {
                int r = write_all(fd, data, data_len);

                if (r < 0)
                        return ipc_err(L, "%s: writing data: %s", fname, strerror(-r));
        }
        snprintf(o->name, sizeof o->name, "%s", req.name);
        return ipc_call(L, fname, OP(IPC_SHM_CREATE), &req.base, fd, decode_shm_create);
}

static int decode_shm_open(lua_State *L, CellaReply *reply)
{
        (void)obj_from_reply(L, reply, 3, M_READ | M_WRITE, "cella.ipc.shm.open");
        return 1;
}

/* ipc.shm.open(name [, "r" | "rw"]) -> buffer */
static int shm_open_(lua_State *L)
{
        Cella__V1__IpcOpenRequest req = CELLA__V1__IPC_OPEN_REQUEST__INIT;

        req.name = (char *)clua_check_str(L, 1, 1, IPC_NAME_MAX, NULL);
        req.modes = check_modes(L, 2, M_READ);
        luaL_argcheck(L, req.modes & M_READ, 2, "shared memory opens \"r\" or \"rw\"");
        lua_settop(L, 2);
        (void)obj_push(L, KIND(SHM)); /* index 3 */
        return ipc_call(L, "cella.ipc.shm.open", OP(IPC_SHM_OPEN), &req.base, -1, decode_shm_open);
}

/* The buffer at 1 and the range [off, off + len) (off at 2), or raises. */
static IpcObj *check_range(lua_State *L, const char *fname, lua_Integer off, lua_Integer len)
{
        IpcObj *o = check_obj(L, 1, 1u << KIND(SHM), fname);

        if (!o->map)
                ipc_err(L, "%s: the buffer is not mapped", fname);
        if (!clua_ipc_range_ok(o->size, off, len))
                ipc_err(L, "%s: %lld bytes at offset %lld are outside the buffer of %zu bytes",
                        fname, (long long)len, (long long)off, o->size);
        return o;
}

static IpcObj *check_writable(lua_State *L, IpcObj *o, const char *fname)
{
        if (!(o->modes & M_WRITE))
                ipc_err(L, "%s: the buffer %s is read-only (opened with mode \"r\"%s)", fname,
                        o->name, o->charged ? " or sealed read-only" : "");
        return o;
}

/* buf:read(off, len) -> string */
static int shm_read(lua_State *L)
{
        lua_Integer off = luaL_checkinteger(L, 2), len = luaL_checkinteger(L, 3);
        IpcObj *o = check_range(L, "cella.ipc.shm:read", off, len);

        lua_pushlstring(L, (const char *)o->map + off, (size_t)len);
        return 1;
}

/* buf:write(off, s) -> bytes */
static int shm_write(lua_State *L)
{
        size_t len;
        lua_Integer off = luaL_checkinteger(L, 2);
        const char *s = luaL_checklstring(L, 3, &len);
        IpcObj *o;

        if (len > (size_t)INT64_MAX)
                return ipc_err(L, "cella.ipc.shm:write: string too long");
        o = check_range(L, "cella.ipc.shm:write", off, (lua_Integer)len);
        check_writable(L, o, "cella.ipc.shm:write");
        memcpy(o->map + off, s, len);
        lua_pushinteger(L, (lua_Integer)len);
        return 1;
}

/* buf:fill(byte [, off [, len]]) */
static int shm_fill(lua_State *L)
{
        lua_Integer b = luaL_checkinteger(L, 2), off = luaL_optinteger(L, 3, 0), len;
        IpcObj *o = check_obj(L, 1, 1u << KIND(SHM), "cella.ipc.shm:fill");

        luaL_argcheck(L, b >= 0 && b <= 255, 2, "byte out of range 0..255");
        len = luaL_optinteger(
                L, 4,
                off >= 0 && (uint64_t)off <= o->size ? (lua_Integer)(o->size - (size_t)off) : 0);
        o = check_range(L, "cella.ipc.shm:fill", off, len);
        check_writable(L, o, "cella.ipc.shm:fill");
        memset(o->map + off, (int)b, (size_t)len);
        return 0;
}

/* The integer accessors: upvalue 1 the width in bytes, 2 whether signed. */
static int shm_get_int(lua_State *L)
{
        unsigned w = (unsigned)lua_tointeger(L, lua_upvalueindex(1));
        bool sg = lua_toboolean(L, lua_upvalueindex(2));
        lua_Integer off = luaL_checkinteger(L, 2);
        IpcObj *o = check_range(L, "cella.ipc.shm:get", off, w);

        lua_pushinteger(L, clua_ipc_int_value(clua_ipc_load(o->map + off, w), w, sg));
        return 1;
}

static int shm_set_int(lua_State *L)
{
        unsigned w = (unsigned)lua_tointeger(L, lua_upvalueindex(1));
        bool sg = lua_toboolean(L, lua_upvalueindex(2));
        lua_Integer off = luaL_checkinteger(L, 2), v = luaL_checkinteger(L, 3);
        IpcObj *o = check_range(L, "cella.ipc.shm:set", off, w);

        check_writable(L, o, "cella.ipc.shm:set");
        if (!clua_ipc_int_fits(v, w, sg))
                return ipc_err(L, "cella.ipc.shm:set: %lld does not fit in %s%u", (long long)v,
                               sg ? "i" : "u", w * 8);
        clua_ipc_store(o->map + off, w, (uint64_t)v);
        return 0;
}

static int shm_size(lua_State *L)
{
        lua_pushinteger(L,
                        (lua_Integer)check_obj(L, 1, 1u << KIND(SHM), "cella.ipc.shm:size")->size);
        return 1;
}

static int shm_writable(lua_State *L)
{
        lua_pushboolean(L, (check_obj(L, 1, 1u << KIND(SHM), "cella.ipc.shm:writable")->modes &
                            M_WRITE) != 0);
        return 1;
}

/* ---- pipes and channels -------------------------------------------------------- */

static void obj_watch(IpcObj *o)
{
        (void)clua_fd_watch_duplex(&o->watch, o->fd, o->rwait, o->wwait, 0);
}

static void watch_ready(CLuaFdWatch *w, uint32_t ev)
{
        IpcObj *o = w->userdata;

        clua_io_wake_duplex(ev, &o->rwait, &o->wwait);
        obj_watch(o);
}

static int decode_pipe_create(lua_State *L, CellaReply *reply)
{
        (void)obj_from_reply(L, reply, 4, M_READ | M_WRITE, "cella.ipc.pipe.create");
        return 1;
}

/* ipc.pipe.create(name, peer [, {mode = "w", buffer_bytes, timeout_ms}]) and
 * ipc.channel.create(name, peer [, {timeout_ms}]): upvalue 1 the kind. */
static int pipe_create(lua_State *L)
{
        Cella__V1__IpcPipeCreateRequest req = CELLA__V1__IPC_PIPE_CREATE_REQUEST__INIT;
        int kind = (int)lua_tointeger(L, lua_upvalueindex(1));
        const char *fname =
                kind == KIND(PIPE) ? "cella.ipc.pipe.create" : "cella.ipc.channel.create";

        req.name = (char *)clua_check_str(L, 1, 1, IPC_NAME_MAX, NULL);
        req.peer = (char *)clua_check_str(L, 2, 1, CELLA_ID_MAX, NULL);
        req.kind = kind;
        req.modes = kind == KIND(PIPE) ? M_WRITE : M_READ | M_WRITE;
        if (!lua_isnoneornil(L, 3)) {
                lua_Integer v;

                luaL_checktype(L, 3, LUA_TTABLE);
                if (kind == KIND(PIPE)) {
                        lua_getfield(L, 3, "mode");
                        req.modes = check_modes(L, -1, M_WRITE);
                        if (req.modes == (M_READ | M_WRITE))
                                ipc_err(L, "%s: a pipe's end is \"r\" or \"w\"", fname);
                        lua_pop(L, 1);
                        lua_getfield(L, 3, "buffer_bytes");
                        if (!lua_isnil(L, -1)) {
                                v = luaL_checkinteger(L, -1);
                                if (v < 0 || v > (1 << 30))
                                        ipc_err(L, "%s: buffer_bytes out of range 0..2^30", fname);
                                req.buffer_bytes = (uint32_t)v;
                        }
                        lua_pop(L, 1);
                }
                lua_getfield(L, 3, "timeout_ms");
                if (!lua_isnil(L, -1)) {
                        v = luaL_checkinteger(L, -1);
                        if (v < 1 || v > IPC_PIPE_TIMEOUT_MAX_MS)
                                ipc_err(L, "%s: timeout_ms out of range 1..600000", fname);
                        req.timeout_ms = (uint32_t)v;
                }
                lua_pop(L, 1);
        }
        lua_settop(L, 3);
        (void)obj_push(L, kind); /* index 4 */
        return ipc_call(L, fname, OP(IPC_PIPE_CREATE), &req.base, -1, decode_pipe_create);
}

/* end:read([max [, timeout]]) -> string | nil (end of stream) | false (timeout).
 * Stack: 1 end, 2 max, 3 timeout ns (-1: none). */
static int pipe_read_k(lua_State *L, int status, lua_KContext ctx)
{
        IpcObj *o = lua_touserdata(L, 1);
        size_t max = (size_t)lua_tointeger(L, 2);
        luaL_Buffer b;
        ssize_t n;
        char *p;

        (void)ctx;
        if (status == LUA_YIELD && clua_io_resumed(L, &o->rwait) && o->fd >= 0) {
                lua_pushboolean(L, 0);
                return 1;
        }
        if (o->fd < 0)
                return ipc_err(L, "cella.ipc.pipe:read: the %s is closed", kind_word(o->kind));
        if (o->rwait)
                return ipc_err(L, "cella.ipc.pipe:read: another task is reading");
        p = luaL_buffinitsize(L, &b, max);
        if (o->kind == KIND(CHANNEL)) {
                n = recv(o->fd, p, max, MSG_DONTWAIT | MSG_TRUNC);
                if (n > (ssize_t)max)
                        return ipc_err(L,
                                       "cella.ipc.channel:read: a message of %zd bytes was "
                                       "larger than max (%zu): its end was lost",
                                       n, max);
        } else
                n = read(o->fd, p, max);
        if (n > 0) {
                luaL_pushresultsize(&b, (size_t)n);
                return 1;
        }
        if (n == 0) {
                lua_pushnil(L);
                return 1;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return ipc_err(L, "cella.ipc.pipe:read: %s", strerror(errno));
        if (lua_tointeger(L, 3) == 0) {
                lua_pushboolean(L, 0);
                return 1;
        }
        lua_settop(L, 3);
        (void)clua_fd_watch_set(&o->watch, o->fd,
                                EPOLLIN | EPOLLRDHUP |
                                        ((o->wwait && !o->wwait->done) ? EPOLLOUT : 0));
        return clua_io_wait(L, &o->rwait,
                            lua_tointeger(L, 3) > 0 ? (uint64_t)lua_tointeger(L, 3) : 0,
                            pipe_read_k, 0);
}

static int pipe_read(lua_State *L)
{
        IpcObj *o =
                check_obj(L, 1, (1u << KIND(PIPE)) | (1u << KIND(CHANNEL)), "cella.ipc.pipe:read");
        lua_Integer max = luaL_optinteger(L, 2, IPC_READ_DEFAULT);
        int64_t t = check_timeout(L, 3, -1);

        luaL_argcheck(L, max >= 1 && max <= IPC_READ_MAX, 2, "out of range 1..1048576 bytes");
        if (!(o->modes & M_READ))
                return ipc_err(L, "cella.ipc.pipe:read: this end of %s only writes", o->name);
        lua_settop(L, 1);
        lua_pushinteger(L, max);
        lua_pushinteger(L, t);
        return pipe_read_k(L, LUA_OK, 0);
}

/* end:write(data [, timeout]) -> bytes. Stack: 1 end, 2 data, 3 timeout ns.
 * ctx: the bytes written so far. A channel sends data as one message. */
static int pipe_write_k(lua_State *L, int status, lua_KContext ctx)
{
        IpcObj *o = lua_touserdata(L, 1);
        size_t len, off = (size_t)ctx;
        const char *s = lua_tolstring(L, 2, &len);
        int64_t t = lua_tointeger(L, 3);

        if (status == LUA_YIELD && clua_io_resumed(L, &o->wwait) && o->fd >= 0)
                return ipc_err(L, "cella.ipc.pipe:write: timed out after %zu of %zu bytes", off,
                               len);
        if (o->wwait)
                return ipc_err(L, "cella.ipc.pipe:write: another task is writing");
        for (;;) {
                ssize_t n;

                if (o->kind != KIND(CHANNEL) && off >= len)
                        break;

                if (o->fd < 0)
                        return ipc_err(L, "cella.ipc.pipe:write: the %s is closed",
                                       kind_word(o->kind));
                if (o->kind == KIND(CHANNEL))
                        n = send(o->fd, s, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                else
                        n = write(o->fd, s + off, len - off);
                if (n >= 0) {
                        off += (size_t)n;
                        if (o->kind == KIND(CHANNEL))
                                break;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno == EPIPE)
                        return ipc_err(L, "cella.ipc.pipe:write: the reading end is closed");
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                        return ipc_err(L, "cella.ipc.pipe:write: %s", strerror(errno));
                if (t == 0)
                        return ipc_err(L, "cella.ipc.pipe:write: full after %zu of %zu bytes", off,
                                       len);
                (void)clua_fd_watch_set(
                        &o->watch, o->fd,
                        EPOLLOUT | ((o->rwait && !o->rwait->done) ? (EPOLLIN | EPOLLRDHUP) : 0));
                return clua_io_wait(L, &o->wwait, t > 0 ? (uint64_t)t : 0, pipe_write_k,
                                    (lua_KContext)off);
        }
        lua_pushinteger(L, (lua_Integer)len);
        return 1;
}

static int pipe_write(lua_State *L)
{
        IpcObj *o =
                check_obj(L, 1, (1u << KIND(PIPE)) | (1u << KIND(CHANNEL)), "cella.ipc.pipe:write");
        int64_t t;

        luaL_checkstring(L, 2);
        t = check_timeout(L, 3, -1);
        if (!(o->modes & M_WRITE))
                return ipc_err(L, "cella.ipc.pipe:write: this end of %s only reads", o->name);
        if (o->kind == KIND(CHANNEL) && lua_rawlen(L, 2) == 0)
                return ipc_err(L, "cella.ipc.channel:write: a message has 1 byte or more (an "
                                  "empty one reads as the end of the channel)");
        lua_settop(L, 2);
        lua_pushinteger(L, t);
        return pipe_write_k(L, LUA_OK, 0);
}

/* ---- semaphores ---------------------------------------------------------------- */

static int decode_sem_create(lua_State *L, CellaReply *reply)
{
        (void)obj_from_reply(L, reply, 0, M_READ | M_WRITE, "cella.ipc.sem.create");
        return 1;
}

static int decode_sem_open(lua_State *L, CellaReply *reply)
{
        (void)obj_from_reply(L, reply, 0, M_READ | M_WRITE, "cella.ipc.sem.open");
        return 1;
}

/* ipc.sem.create(name, initial [, offers]) -> sem */
static int sem_create(lua_State *L)
{
        Cella__V1__IpcSemCreateRequest req = CELLA__V1__IPC_SEM_CREATE_REQUEST__INIT;
        lua_Integer init = luaL_optinteger(L, 2, 0);

        req.name = (char *)clua_check_str(L, 1, 1, IPC_NAME_MAX, NULL);
        luaL_argcheck(L, init >= 0 && init <= UINT32_MAX, 2, "out of range 0..4294967295");
        req.initial = (uint32_t)init;
        lua_settop(L, 3);
        req.offers = check_offers(L, 3, &req.n_offers);
        return ipc_call(L, "cella.ipc.sem.create", OP(IPC_SEM_CREATE), &req.base, -1,
                        decode_sem_create);
}

/* ipc.sem.open(name) -> sem */
static int sem_open_(lua_State *L)
{
        Cella__V1__IpcOpenRequest req = CELLA__V1__IPC_OPEN_REQUEST__INIT;

        req.name = (char *)clua_check_str(L, 1, 1, IPC_NAME_MAX, NULL);
        req.modes = M_READ | M_WRITE;
        lua_settop(L, 1);
        return ipc_call(L, "cella.ipc.sem.open", OP(IPC_SEM_OPEN), &req.base, -1, decode_sem_open);
}

/* sem:wait([timeout]) -> true (taken) | false (timed out). Stack: 1 sem, 2 the
 * deadline (CLOCK_MONOTONIC ns; 0: none; -1: do not wait). */
static int sem_wait_k(lua_State *L, int status, lua_KContext ctx)
{
        IpcObj *o = lua_touserdata(L, 1);
        int64_t deadline = lua_tointeger(L, 2);
        uint64_t v;
        ssize_t n;

        (void)ctx;
        if (status == LUA_YIELD)
                (void)clua_io_resumed(L, &o->rwait);
        if (o->fd < 0)
                return ipc_err(L, "cella.ipc.sem:wait: the semaphore is closed");
        if (o->rwait)
                return ipc_err(L, "cella.ipc.sem:wait: another task of the app waits on it");
        n = read(o->fd, &v, sizeof v);
        if (n == (ssize_t)sizeof v) {
                lua_pushboolean(L, 1);
                return 1;
        }
        if (n >= 0 || (errno != EAGAIN && errno != EINTR))
                return ipc_err(L, "cella.ipc.sem:wait: %s", n < 0 ? strerror(errno) : "short read");
        {
                struct timespec ts;
                uint64_t now, left = 0;

                clock_gettime(CLOCK_MONOTONIC, &ts);
                now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
                if (deadline < 0 || (deadline > 0 && (uint64_t)deadline <= now)) {
                        lua_pushboolean(L, 0);
                        return 1;
                }
                if (deadline > 0)
                        left = (uint64_t)deadline - now;
                (void)clua_fd_watch_set(&o->watch, o->fd, EPOLLIN);
                /* Woken by the fd or the timeout: try again (another holder may
                 * have taken it first), until the deadline. */
                return clua_io_wait(L, &o->rwait, left, sem_wait_k, 0);
        }
}

static int sem_wait(lua_State *L)
{
        check_obj(L, 1, 1u << KIND(SEM), "cella.ipc.sem:wait");
        int64_t t = check_timeout(L, 2, -2);

        lua_settop(L, 1);
        if (t == -2)
                lua_pushinteger(L, 0);
        else if (t == 0)
                lua_pushinteger(L, -1);
        else {
                struct timespec ts;

                clock_gettime(CLOCK_MONOTONIC, &ts);
                lua_pushinteger(L, (lua_Integer)((uint64_t)ts.tv_sec * 1000000000u +
                                                 (uint64_t)ts.tv_nsec + (uint64_t)t));
        }
        return sem_wait_k(L, LUA_OK, 0);
}

/* sem:post([n = 1]) */
static int sem_post(lua_State *L)
{
        IpcObj *o = check_obj(L, 1, 1u << KIND(SEM), "cella.ipc.sem:post");
        lua_Integer n = luaL_optinteger(L, 2, 1);
        uint64_t v;

        luaL_argcheck(L, n >= 1 && n <= UINT32_MAX, 2, "out of range 1..4294967295");
        v = (uint64_t)n;
        for (;;) {
                ssize_t w = write(o->fd, &v, sizeof v);

                if (w == (ssize_t)sizeof v)
                        return 0;
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno == EAGAIN)
                        return ipc_err(L, "cella.ipc.sem:post: the count would pass its "
                                          "maximum (2^64-2)");
                return ipc_err(L, "cella.ipc.sem:post: %s",
                               w < 0 ? strerror(errno) : "short write");
        }
}

/* ---- queues -------------------------------------------------------------------- */

static int decode_queue_create(lua_State *L, CellaReply *reply)
{
        (void)obj_from_reply(L, reply, 0, M_READ | M_WRITE, "cella.ipc.queue.create");
        return 1;
}

static int decode_queue_open(lua_State *L, CellaReply *reply)
{
        (void)obj_from_reply(L, reply, 0, M_READ | M_WRITE, "cella.ipc.queue.open");
        return 1;
}

/* ipc.queue.create(name [, {depth_max, message_bytes_max, persistent, offers}]) */
static int queue_create(lua_State *L)
{
        Cella__V1__IpcQueueCreateRequest req = CELLA__V1__IPC_QUEUE_CREATE_REQUEST__INIT;

        req.name = (char *)clua_check_str(L, 1, 1, IPC_NAME_MAX, NULL);
        req.depth_max = 1024;
        req.message_bytes_max = 4096;
        lua_settop(L, 2);
        if (!lua_isnil(L, 2)) {
                lua_Integer v;

                luaL_checktype(L, 2, LUA_TTABLE);
                if (lua_getfield(L, 2, "depth_max") != LUA_TNIL) {
                        v = luaL_checkinteger(L, -1);
                        luaL_argcheck(L, v >= 1 && v <= UINT32_MAX, 2, "depth_max out of range");
                        req.depth_max = (uint32_t)v;
                }
                if (lua_getfield(L, 2, "message_bytes_max") != LUA_TNIL) {
                        v = luaL_checkinteger(L, -1);
                        luaL_argcheck(L, v >= 1 && v <= IPC_QMSG_MAX, 2,
                                      "message_bytes_max out of range 1..65000");
                        req.message_bytes_max = (uint32_t)v;
                }
                lua_getfield(L, 2, "persistent");
                req.persistent = lua_toboolean(L, -1);
                lua_getfield(L, 2, "offers");
                lua_replace(L, 3);
                lua_settop(L, 3);
                req.offers = check_offers(L, 3, &req.n_offers);
        }
        return ipc_call(L, "cella.ipc.queue.create", OP(IPC_QUEUE_CREATE), &req.base, -1,
                        decode_queue_create);
}

/* ipc.queue.open(name [, "r" | "w" | "rw"]) */
static int queue_open_(lua_State *L)
{
        Cella__V1__IpcOpenRequest req = CELLA__V1__IPC_OPEN_REQUEST__INIT;

        req.name = (char *)clua_check_str(L, 1, 1, IPC_NAME_MAX, NULL);
        req.modes = check_modes(L, 2, M_READ);
        lua_settop(L, 2);
        return ipc_call(L, "cella.ipc.queue.open", OP(IPC_QUEUE_OPEN), &req.base, -1,
                        decode_queue_open);
}

static int decode_queue_send(lua_State *L, CellaReply *reply)
{
        Cella__V1__IpcQueueSendReply *r;

        /* Full (nothing was sent): an answer, not an error; the sender decides. */
        if (reply->error == -EAGAIN) {
                lua_pushnil(L);
                lua_pushfstring(L, "cella.ipc.queue:send: %s%s%s", strerror(EAGAIN),
                                *reply->error_message ? ": " : "", reply->error_message);
                return 2;
        }
        r = reply_unpack(L, reply, &cella__v1__ipc_queue_send_reply__descriptor,
                         "cella.ipc.queue:send");

        lua_pushinteger(L, r->depth);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return 1;
}

/* Reads one message (a string, or {data = s, priority = p}) at index i into m. */
static void check_qmsg(lua_State *L, int i, Cella__V1__IpcQueueMessage *m, lua_Integer prio,
                       const IpcObj *o, lua_Integer n)
{
        size_t len;
        const char *s;

        *m = (Cella__V1__IpcQueueMessage)CELLA__V1__IPC_QUEUE_MESSAGE__INIT;
        if (lua_type(L, i) == LUA_TTABLE) {
                lua_getfield(L, i, "priority");
                if (!lua_isnil(L, -1)) {
                        if (!lua_isinteger(L, -1))
                                ipc_err(L,
                                        "cella.ipc.queue:send: message %d: priority must "
                                        "be an integer",
                                        (int)n);
                        prio = lua_tointeger(L, -1);
                }
                lua_pop(L, 1);
                lua_getfield(L, i, "data");
                lua_replace(L, i); /* the string stays alive in the stack slot */
        }
        if (lua_type(L, i) != LUA_TSTRING)
                ipc_err(L, "cella.ipc.queue:send: message %d is not a string", (int)n);
        s = lua_tolstring(L, i, &len);
        if (o->msg_max && len > o->msg_max)
                ipc_err(L,
                        "cella.ipc.queue:send: message %d of %zu bytes is larger than the "
                        "queue's %llu",
                        (int)n, len, (unsigned long long)o->msg_max);
        if (prio < 0 || prio > 31)
                ipc_err(L, "cella.ipc.queue:send: message %d: priority out of range 0..31", (int)n);
        m->data = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)s};
        m->priority = (uint32_t)prio;
        m->sender = "";
}

/* q:send(data [, priority]) -> depth; q:send({msg, ...}) -> depth (a batch, all or
 * none; each msg a string or {data = s, priority = p}); nil, message when the queue
 * has no room for all of them (EAGAIN: nothing was sent). */
static int queue_send(lua_State *L)
{
        Cella__V1__IpcQueueSendRequest req = CELLA__V1__IPC_QUEUE_SEND_REQUEST__INIT;
        IpcObj *o = check_obj(L, 1, 1u << KIND(QUEUE), "cella.ipc.queue:send");
        Cella__V1__IpcQueueMessage *v, **pv;
        lua_Integer n = 1, prio = 0;
        bool batch = false;

        if (!(o->modes & M_WRITE))
                return ipc_err(L, "cella.ipc.queue:send: the handle of %s only receives", o->name);
        if (lua_type(L, 2) == LUA_TTABLE) {
                batch = lua_getfield(L, 2, "data") == LUA_TNIL;
                lua_pop(L, 1);
        }
        if (batch) {
                n = luaL_len(L, 2);
                luaL_argcheck(L, n >= 1 && n <= IPC_BATCH_MAX, 2, "a batch of 1..1024 messages");
                luaL_argcheck(L, lua_isnoneornil(L, 3), 3,
                              "a batch's priorities are its messages' own");
                luaL_checkstack(L, (int)n + 8, "too many messages");
        } else if (!lua_isnoneornil(L, 3))
                prio = luaL_checkinteger(L, 3);
        lua_settop(L, 2);
        pv = lua_newuserdatauv(L, (size_t)n * (sizeof(*v) + sizeof(*pv)), 0); /* 3 */
        v = (Cella__V1__IpcQueueMessage *)(void *)(pv + n);
        if (batch)
                for (lua_Integer i = 1; i <= n; i++) {
                        lua_geti(L, 2, i); /* 3 + i */
                        check_qmsg(L, lua_gettop(L), &v[i - 1], 0, o, i);
                        pv[i - 1] = &v[i - 1];
                }
        else {
                lua_pushvalue(L, 2);
                check_qmsg(L, lua_gettop(L), &v[0], prio, o, 1);
                pv[0] = &v[0];
        }
        if (!o->handle)
                return ipc_err(L, "cella.ipc.queue:send: the kernel closed this handle (%s)",
                               o->revoked[0] ? o->revoked : "gone");
        req.handle = o->handle;
        req.n_messages = (size_t)n;
        req.messages = pv;
        {
                size_t packed = protobuf_c_message_get_packed_size(&req.base);

                if (packed > CELLA_BODY_MAX)
                        return ipc_err(L,
                                       "cella.ipc.queue:send: %lld messages pack into %zu bytes, "
                                       "more than one request's %u: send fewer at once",
                                       (long long)n, packed, CELLA_BODY_MAX);
        }
        return ipc_call(L, "cella.ipc.queue:send", OP(IPC_QUEUE_SEND), &req.base, -1,
                        decode_queue_send);
}

static int decode_queue_receive(lua_State *L, CellaReply *reply)
{
        Cella__V1__IpcQueueReceiveReply *r;

        /* Empty (not waiting) or nothing within the timeout: an empty list. */
        if (reply->error == -EAGAIN || reply->error == -ETIMEDOUT) {
                lua_newtable(L);
                lua_pushinteger(L, 0);
                return 2;
        }
        r = reply_unpack(L, reply, &cella__v1__ipc_queue_receive_reply__descriptor,
                         "cella.ipc.queue:receive");
        lua_createtable(L, (int)(r->n_messages < 1024 ? r->n_messages : 1024), 0);
        for (size_t i = 0; i < r->n_messages; i++) {
                Cella__V1__IpcQueueMessage *m = r->messages[i];

                lua_createtable(L, 0, 4);
                lua_pushlstring(L, (const char *)m->data.data, m->data.len);
                lua_setfield(L, -2, "data");
                lua_pushinteger(L, m->priority);
                lua_setfield(L, -2, "priority");
                lua_pushstring(L, m->sender ?: "");
                lua_setfield(L, -2, "sender");
                lua_pushinteger(L, (lua_Integer)m->seq);
                lua_setfield(L, -2, "seq");
                lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_pushinteger(L, r->depth);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return 2;
}

/* q:receive([max = 1 [, timeout = 0]]) -> {msg...}, depth */
static int queue_receive(lua_State *L)
{
        Cella__V1__IpcQueueReceiveRequest req = CELLA__V1__IPC_QUEUE_RECEIVE_REQUEST__INIT;
        IpcObj *o = check_obj(L, 1, 1u << KIND(QUEUE), "cella.ipc.queue:receive");
        lua_Integer max = luaL_optinteger(L, 2, 1);
        int64_t t = check_timeout(L, 3, 0);

        luaL_argcheck(L, max >= 1 && max <= IPC_BATCH_MAX, 2, "out of range 1..1024");
        if (!(o->modes & M_READ))
                return ipc_err(L, "cella.ipc.queue:receive: the handle of %s only sends", o->name);
        req.handle = o->handle;
        req.max_messages = (uint32_t)max;
        req.timeout_ms = (uint32_t)((t + 999999) / 1000000);
        lua_settop(L, 1);
        return ipc_call(L, "cella.ipc.queue:receive", OP(IPC_QUEUE_RECEIVE), &req.base, -1,
                        decode_queue_receive);
}

/* ---- every object: close, destroy, pass, offer, info ----------------------------- */

/* obj:close(): closing twice does nothing. */
static int obj_close(lua_State *L)
{
        if (!test_obj(L, 1))
                return ipc_err(L, "cella.ipc:close: bad argument #1 (not a cella.ipc object)");
        return obj_gc(L);
}

static int decode_destroy(lua_State *L, CellaReply *reply)
{
        IpcObj *o = lua_touserdata(L, 1);

        reply_check(L, reply, "cella.ipc:destroy");
        /* The kernel closed the handle with the name. */
        o->handle = 0;
        release_local(clua_app_of(L), o);
        o->closed = true;
        return 0;
}

/* obj:destroy(): the creator removes the name and closes its handle (EPERM for
 * anyone else). */
static int obj_destroy(lua_State *L)
{
        Cella__V1__IpcCloseRequest req = CELLA__V1__IPC_CLOSE_REQUEST__INIT;
        IpcObj *o = check_obj(L, 1, ANY_KIND, "cella.ipc:destroy");

        if (!o->handle)
                return ipc_err(L, "cella.ipc:destroy: the kernel closed this handle (%s)",
                               o->revoked[0] ? o->revoked : "gone");
        req.handle = o->handle;
        req.destroy = true;
        lua_settop(L, 1);
        return ipc_call(L, "cella.ipc:destroy", OP(IPC_CLOSE), &req.base, -1, decode_destroy);
}

static int decode_pass(lua_State *L, CellaReply *reply)
{
        Cella__V1__IpcPassReply *r =
                reply_unpack(L, reply, &cella__v1__ipc_pass_reply__descriptor, "cella.ipc:pass");

        lua_pushinteger(L, (lua_Integer)r->token);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return 1;
}

/* obj:pass(app_id [, modes]) -> token */
static int obj_pass(lua_State *L)
{
        Cella__V1__IpcPassRequest req = CELLA__V1__IPC_PASS_REQUEST__INIT;
        IpcObj *o = check_obj(L, 1, ANY_KIND, "cella.ipc:pass");

        req.to = (char *)clua_check_str(L, 2, 1, CELLA_ID_MAX, NULL);
        req.modes = check_modes(L, 3, o->modes);
        if (!o->handle)
                return ipc_err(L, "cella.ipc:pass: the kernel closed this handle (%s)",
                               o->revoked[0] ? o->revoked : "gone");
        req.handle = o->handle;
        lua_settop(L, 3);
        return ipc_call(L, "cella.ipc:pass", OP(IPC_PASS), &req.base, -1, decode_pass);
}

static int decode_empty(lua_State *L, CellaReply *reply)
{
        reply_check(L, reply, "cella.ipc:offer");
        return 0;
}

/* obj:offer({offer...}): replaces the object's offers (its creator only). */
static int obj_offer(lua_State *L)
{
        Cella__V1__IpcOfferRequest req = CELLA__V1__IPC_OFFER_REQUEST__INIT;
        IpcObj *o = check_obj(L, 1, ANY_KIND, "cella.ipc:offer");

        luaL_checktype(L, 2, LUA_TTABLE);
        lua_settop(L, 2);
        req.offers = check_offers(L, 2, &req.n_offers);
        req.handle = o->handle;
        return ipc_call(L, "cella.ipc:offer", OP(IPC_OFFER), &req.base, -1, decode_empty);
}

/* obj:info() -> {kind, name, handle, modes, owner, peer, size, revoked} */
static int obj_info(lua_State *L)
{
        IpcObj *o = test_obj(L, 1);

        if (!o)
                return ipc_err(L, "cella.ipc:info: bad argument #1 (not a cella.ipc object)");
        lua_createtable(L, 0, 9);
        lua_pushstring(L, kind_word(o->kind));
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, o->name);
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, (lua_Integer)o->handle);
        lua_setfield(L, -2, "handle");
        lua_pushstring(L, modes_word(o->modes));
        lua_setfield(L, -2, "modes");
        lua_pushstring(L, o->owner);
        lua_setfield(L, -2, "owner");
        lua_pushstring(L, o->peer);
        lua_setfield(L, -2, "peer");
        if (o->kind == KIND(SHM)) {
                lua_pushinteger(L, (lua_Integer)o->size);
                lua_setfield(L, -2, "size");
        }
        if (o->kind == KIND(QUEUE)) {
                lua_pushinteger(L, (lua_Integer)o->msg_max);
                lua_setfield(L, -2, "message_bytes_max");
        }
        lua_pushboolean(L, o->closed);
        lua_setfield(L, -2, "closed");
        if (o->revoked[0]) {
                lua_pushstring(L, o->revoked);
                lua_setfield(L, -2, "revoked");
        }
        return 1;
}

/* ---- module functions: accept, list, handlers ------------------------------------ */

static int decode_accept(lua_State *L, CellaReply *reply)
{
        (void)obj_from_reply(L, reply, 0, M_READ | M_WRITE, "cella.ipc.accept");
        return 1;
}

/* ipc.accept(offer | token) -> object */
static int ipc_accept(lua_State *L)
{
        Cella__V1__IpcAcceptRequest req = CELLA__V1__IPC_ACCEPT_REQUEST__INIT;
        lua_Integer token;

        if (lua_type(L, 1) == LUA_TTABLE) {
                lua_getfield(L, 1, "token");
                token = luaL_checkinteger(L, -1);
                lua_pop(L, 1);
        } else
                token = luaL_checkinteger(L, 1);
        luaL_argcheck(L, token > 0, 1, "not a token");
        req.token = (uint64_t)token;
        lua_settop(L, 1);
        return ipc_call(L, "cella.ipc.accept", OP(IPC_ACCEPT), &req.base, -1, decode_accept);
}

static void push_handle_reply(lua_State *L, const Cella__V1__IpcHandleReply *h)
{
        lua_createtable(L, 0, 7);
        lua_pushinteger(L, (lua_Integer)h->handle);
        lua_setfield(L, -2, "handle");
        lua_pushstring(L, kind_word(h->kind));
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, h->name ?: "");
        lua_setfield(L, -2, "name");
        lua_pushstring(L, modes_word(h->modes));
        lua_setfield(L, -2, "modes");
        lua_pushinteger(L, (lua_Integer)h->size_bytes);
        lua_setfield(L, -2, "size");
        lua_pushstring(L, h->owner ?: "");
        lua_setfield(L, -2, "owner");
        lua_pushstring(L, h->peer ?: "");
        lua_setfield(L, -2, "peer");
}

static int decode_list(lua_State *L, CellaReply *reply)
{
        Cella__V1__IpcListReply *r =
                reply_unpack(L, reply, &cella__v1__ipc_list_reply__descriptor, "cella.ipc.list");
        const Cella__V1__IpcUsage *u = r->usage;

        lua_createtable(L, 0, 2);
        lua_createtable(L, (int)(r->n_handles < 4096 ? r->n_handles : 4096), 0);
        for (size_t i = 0; i < r->n_handles; i++) {
                push_handle_reply(L, r->handles[i]);
                lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "handles");
        lua_createtable(L, 0, 8);
        if (u) {
#define F(x)                                                                                       \
        lua_pushinteger(L, (lua_Integer)u->x);                                                     \
        lua_setfield(L, -2, #x)
                F(objects);
                F(objects_max);
                F(shm_bytes);
                F(shm_bytes_max);
                F(queued_bytes);
                F(queued_bytes_max);
                F(handles);
                F(handles_max);
#undef F
        }
        lua_setfield(L, -2, "usage");
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return 1;
}

/* ipc.list() -> {handles = {...}, usage = {...}} */
static int ipc_list(lua_State *L)
{
        Cella__V1__IpcListRequest req = CELLA__V1__IPC_LIST_REQUEST__INIT;

        lua_settop(L, 0);
        return ipc_call(L, "cella.ipc.list", OP(IPC_LIST), &req.base, -1, decode_list);
}

/* ipc.on_offer(fn | nil): fn(offer) for each EVENT_IPC_OFFERED */
static int ipc_on_offer(lua_State *L)
{
        CLuaIpc *s = ipc_state(L);

        if (!lua_isnil(L, 1))
                luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, 1);
        /* Offers reach only an app that opened its channel. */
        if (!lua_isnil(L, 1))
                (void)clua_kernel(L, "cella.ipc.on_offer");
        clua_set_handler(L, &s->on_offer_ref);
        return 0;
}

/* ipc.on_closed(fn | nil): fn(handle, reason, object) when the kernel closes a handle */
static int ipc_on_closed(lua_State *L)
{
        CLuaIpc *s = ipc_state(L);

        if (!lua_isnil(L, 1))
                luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, 1);
        clua_set_handler(L, &s->on_closed_ref);
        return 0;
}

/* The dispatcher, run as a task: (opcode, body) of an ipc event. */
static int dispatch_done(lua_State *L, int status, lua_KContext ctx)
{
        (void)L;
        (void)status;
        (void)ctx;
        return 0;
}

static int ipc_dispatch(lua_State *L)
{
        CLuaIpc *s = ipc_state(L);
        lua_Integer op = luaL_checkinteger(L, 1);
        size_t len;
        const char *body = luaL_checklstring(L, 2, &len);

        if (op == CELLA__V1__OPCODE__OPCODE_EVENT_IPC_OFFERED) {
                Cella__V1__IpcOfferedEvent *e;

                if (!s || s->on_offer_ref == LUA_NOREF)
                        return 0;
                e = cella__v1__ipc_offered_event__unpack(NULL, len, (const uint8_t *)body);
                if (!e)
                        return 0;
                lua_rawgeti(L, LUA_REGISTRYINDEX, s->on_offer_ref);
                lua_createtable(L, 0, 6);
                lua_pushinteger(L, (lua_Integer)e->token);
                lua_setfield(L, -2, "token");
                lua_pushstring(L, kind_word(e->kind));
                lua_setfield(L, -2, "kind");
                lua_pushstring(L, e->name ?: "");
                lua_setfield(L, -2, "name");
                lua_pushstring(L, modes_word(e->modes));
                lua_setfield(L, -2, "modes");
                lua_pushstring(L, e->from ?: "");
                lua_setfield(L, -2, "from");
                lua_pushinteger(L, e->expires_ms);
                lua_setfield(L, -2, "expires_ms");
                cella__v1__ipc_offered_event__free_unpacked(e, NULL);
                lua_callk(L, 1, 0, 0, dispatch_done);
                return 0;
        }
        if (op == CELLA__V1__OPCODE__OPCODE_EVENT_IPC_CLOSED) {
                Cella__V1__IpcClosedEvent *e =
                        cella__v1__ipc_closed_event__unpack(NULL, len, (const uint8_t *)body);
                lua_Integer h;
                IpcObj *o;

                if (!e)
                        return 0;
                h = (lua_Integer)e->handle;
                lua_pushstring(L, e->reason ?: "");
                cella__v1__ipc_closed_event__free_unpacked(e, NULL);
                lua_rawgetp(L, LUA_REGISTRYINDEX, &key_objects);
                lua_rawgeti(L, -1, h);
                o = lua_touserdata(L, -1);
                if (o)
                        obj_sync(clua_app_of(L), o);
                if (o && o->handle == (uint64_t)h) {
                        /* The kernel's side is gone: no IPC_CLOSE for it any more. The
                         * fd and a mapping stay the app's (docs/ipc.md "Revocation"). */
                        o->handle = 0;
                        snprintf(o->revoked, sizeof o->revoked, "%s", lua_tostring(L, 3));
                        lua_pushnil(L);
                        lua_rawseti(L, 4, h);
                }
                if (!s || s->on_closed_ref == LUA_NOREF)
                        return 0;
                lua_rawgeti(L, LUA_REGISTRYINDEX, s->on_closed_ref);
                lua_pushinteger(L, h);
                lua_pushvalue(L, 3);
                lua_pushvalue(L, 5);
                lua_callk(L, 3, 0, 0, dispatch_done);
        }
        return 0;
}

bool clua_ipc_event(CLuaApp *app, const CellaEvent *ev)
{
        CLuaWork *w;

        if (ev->opcode == CELLA_EVENT_KERNEL_RESTARTED) {
                /* Every handle of the old kernel is gone (obj_sync()); kernel.c goes on
                 * with the event. */
                if (app->ipc)
                        app->ipc->generation++;
                return false;
        }
        if (ev->opcode != CELLA__V1__OPCODE__OPCODE_EVENT_IPC_OFFERED &&
            ev->opcode != CELLA__V1__OPCODE__OPCODE_EVENT_IPC_CLOSED)
                return false;
        if (!app->ipc || app->ipc->event_ref == LUA_NOREF || ev->body_len > CELLA_BODY_MAX)
                return true;
        /* No handler for offers: they expire in the kernel. */
        if (ev->opcode == CELLA__V1__OPCODE__OPCODE_EVENT_IPC_OFFERED &&
            app->ipc->on_offer_ref == LUA_NOREF)
                return true;
        w = calloc(1, sizeof(*w));
        if (!w)
                return true;
        w->kind = CLUA_WORK_CALL;
        w->fn_ref = app->ipc->event_ref;
        w->n_args = 2;
        w->args[0] = (CLuaArg){.kind = CLUA_ARG_INT, .i = ev->opcode};
        w->args[1] =
                (CLuaArg){.kind = CLUA_ARG_STR, .s = malloc(ev->body_len + 1), .len = ev->body_len};
        if (!w->args[1].s) {
                clua_work_free(w);
                return true;
        }
        if (ev->body_len)
                memcpy(w->args[1].s, ev->body, ev->body_len);
        (void)clua_host_queue(app, w);
        return true;
}

/* ---- the module ----------------------------------------------------------------- */

static void add_obj_methods(lua_State *L)
{
        static const luaL_Reg common[] = {
                {"close", obj_close}, {"destroy", obj_destroy}, {"pass", obj_pass},
                {"offer", obj_offer}, {"info", obj_info},       {NULL, NULL},
        };

        luaL_setfuncs(L, common, 0);
}

static void def_class(lua_State *L, const char *mt, const luaL_Reg *methods, bool ints)
{
        if (!cella_lua_newclass(L, mt)) {
                lua_pop(L, 1);
                return;
        }
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        add_obj_methods(L);
        if (ints) {
                static const unsigned widths[] = {1, 2, 4, 8};
                char nm[16];

                for (size_t i = 0; i < 4; i++)
                        for (int sg = 0; sg < 2; sg++) {
                                lua_pushinteger(L, widths[i]);
                                lua_pushboolean(L, sg);
                                lua_pushcclosure(L, shm_get_int, 2);
                                snprintf(nm, sizeof nm, "get_%c%u", sg ? 'i' : 'u', widths[i] * 8);
                                lua_setfield(L, -2, nm);
                                lua_pushinteger(L, widths[i]);
                                lua_pushboolean(L, sg);
                                lua_pushcclosure(L, shm_set_int, 2);
                                snprintf(nm, sizeof nm, "set_%c%u", sg ? 'i' : 'u', widths[i] * 8);
                                lua_setfield(L, -2, nm);
                        }
        }
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, obj_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, obj_gc);
        lua_setfield(L, -2, "__close");
        lua_pop(L, 1);
}

static void sub_table(lua_State *L, const char *name, const luaL_Reg *fns, int kind)
{
        lua_createtable(L, 0, 2);
        for (; fns->name; fns++) {
                lua_pushinteger(L, kind);
                lua_pushcclosure(L, fns->func, 1);
                lua_setfield(L, -2, fns->name);
        }
        lua_setfield(L, -2, name);
}

int luaopen_cella_ipc(lua_State *L)
{
        static const luaL_Reg shm_methods[] = {
                {"read", shm_read}, {"write", shm_write},       {"fill", shm_fill},
                {"size", shm_size}, {"writable", shm_writable}, {NULL, NULL},
        };
        static const luaL_Reg pipe_methods[] = {
                {"read", pipe_read}, {"write", pipe_write}, {NULL, NULL}};
        static const luaL_Reg sem_methods[] = {
                {"wait", sem_wait}, {"post", sem_post}, {NULL, NULL}};
        static const luaL_Reg queue_methods[] = {
                {"send", queue_send}, {"receive", queue_receive}, {NULL, NULL}};
        static const luaL_Reg shm_fns[] = {
                {"create", shm_create}, {"open", shm_open_}, {NULL, NULL}};
        static const luaL_Reg pipe_fns[] = {{"create", pipe_create}, {NULL, NULL}};
        static const luaL_Reg sem_fns[] = {
                {"create", sem_create}, {"open", sem_open_}, {NULL, NULL}};
        static const luaL_Reg queue_fns[] = {
                {"create", queue_create}, {"open", queue_open_}, {NULL, NULL}};
        static const luaL_Reg fns[] = {
                {"accept", ipc_accept},       {"list", ipc_list}, {"on_offer", ipc_on_offer},
                {"on_closed", ipc_on_closed}, {NULL, NULL},
        };
        CLuaApp *app = clua_app_of(L);

        def_class(L, SHM_MT, shm_methods, true);
        def_class(L, PIPE_MT, pipe_methods, false);
        def_class(L, SEM_MT, sem_methods, false);
        def_class(L, QUEUE_MT, queue_methods, false);

        /* The per-app state, once: a userdata of the state, anchored in the registry. */
        if (lua_rawgetp(L, LUA_REGISTRYINDEX, &key_state) == LUA_TNIL) {
                CLuaIpc *s;

                lua_pop(L, 1);
                lua_newtable(L);
                lua_createtable(L, 0, 1);
                lua_pushliteral(L, "v");
                lua_setfield(L, -2, "__mode");
                lua_setmetatable(L, -2);
                lua_rawsetp(L, LUA_REGISTRYINDEX, &key_objects);
                s = lua_newuserdatauv(L, sizeof(*s), 0);
                memset(s, 0, sizeof(*s));
                s->event_ref = s->on_offer_ref = s->on_closed_ref = LUA_NOREF;
                lua_rawsetp(L, LUA_REGISTRYINDEX, &key_state);
                lua_pushcfunction(L, ipc_dispatch);
                s->event_ref = luaL_ref(L, LUA_REGISTRYINDEX);
                app->ipc = s;
        } else
                lua_pop(L, 1);

        luaL_newlib(L, fns);
        sub_table(L, "shm", shm_fns, KIND(SHM));
        sub_table(L, "sem", sem_fns, KIND(SEM));
        sub_table(L, "queue", queue_fns, KIND(QUEUE));
        sub_table(L, "pipe", pipe_fns, KIND(PIPE));
        lua_createtable(L, 0, 1);
        lua_pushinteger(L, KIND(CHANNEL));
        lua_pushcclosure(L, pipe_create, 1);
        lua_setfield(L, -2, "create");
        lua_setfield(L, -2, "channel");
        return 1;
}
