/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ipc object layer (src/broker/calls/ipc-object.c, docs/ipc.md) and the ipc calls
 * (calls/ipc.c), end to end: a real Broker on a libuv loop, Grants and an AuditLog
 * in a temporary state dir, apps attached over socketpairs and driven with raw
 * frames, as an app without libcella would speak. The layer's own functions are
 * driven with BrokerCalls made here, as a call file's handler would get them.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "audit/audit.h"
#include "base/macro.h"
#include "base/strv.h"
#include "broker/broker-internal.h"
#include "broker/broker.h"
#include "broker/calls/ipc-internal.h"
#include "broker/calls/ipc-pending.h"
#include "wire/channel.h"
#include "wire/wire.h"
#include "cella.pb-c.h"
#include "ipc/bus.h"
#include "policy/grants.h"
#include "policy/manifest.h"

#define WAIT_MS       5000
#define APPS_MAX      8
#define OBJECTS_MAX   4
#define HANDLES_MAX   6
#define SHM_BYTES_MAX (1u << 20)
#define PENDING_MAX   2

#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#define KIND_SHM   CELLA__V1__IPC_KIND__IPC_KIND_SHM
#define KIND_SEM   CELLA__V1__IPC_KIND__IPC_KIND_SEM
#define KIND_PIPE  CELLA__V1__IPC_KIND__IPC_KIND_PIPE
#define KIND_ANY   CELLA__V1__IPC_KIND__IPC_KIND_UNSPECIFIED
#define EV_CLOSED  CELLA__V1__OPCODE__OPCODE_EVENT_IPC_CLOSED
#define EV_OFFERED CELLA__V1__OPCODE__OPCODE_EVENT_IPC_OFFERED

/* A frame an app received: a reply (msg, or err for an error reply) or an event. */
typedef struct Frame {
        uint16_t opcode;
        uint32_t flags;
        uint64_t id;
        ProtobufCMessage *msg;
        int err;               /* negative errno of an error reply */
        char err_message[256]; /* and its message */
        int fd;                /* the fd that came with it, or -1 */
        struct Frame *next;
} Frame;

typedef struct TestApp {
        char id[64];
        Manifest *manifest;
        BrokerApp *app;
        int fd;       /* the app's end of the channel */
        bool no_read; /* a slow app: the pump leaves its socket alone */
        uint64_t next_id;
        Frame *inbox; /* in arrival order */
        char data_dir[256];
} TestApp;

static uv_loop_t loop;
static char state_dir[] = "/tmp/cella-ipc-XXXXXX";
static Grants *grants;
static Bus *bus;
static AuditLog *audit;
static Broker *broker;
static TestApp *apps[APPS_MAX];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void setup(void)
{
        BrokerOptions o = {};

        ck_assert_ptr_nonnull(mkdtemp(state_dir));
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(grants_open(state_dir, &grants), 0);
        ck_assert_int_eq(bus_new(&bus), 0);
        ck_assert_int_eq(audit_open(state_dir, NULL, &audit), 0);
        o.loop = &loop;
        o.grants = grants;
        o.audit = audit;
        o.bus = bus;
        o.state_dir = state_dir;
        o.ipc_objects_max = OBJECTS_MAX;
        o.ipc_handles_max = HANDLES_MAX;
        o.ipc_shm_bytes_max = SHM_BYTES_MAX;
        o.ipc_pending_max = PENDING_MAX;
        ck_assert_int_eq(broker_new(&o, &broker), 0);
}

static void frame_free(Frame *f)
{
        if (!f)
                return;
        if (f->msg)
                protobuf_c_message_free_unpacked(f->msg, NULL);
        safe_close(f->fd);
        free(f);
}

static void app_free(TestApp *a)
{
        if (!a)
                return;
        for (unsigned i = 0; i < APPS_MAX; i++)
                if (apps[i] == a)
                        apps[i] = NULL;
        if (a->app)
                broker_app_detach(a->app);
        safe_close(a->fd);
        while (a->inbox) {
                Frame *f = a->inbox;

                a->inbox = f->next;
                frame_free(f);
        }
        manifest_free(a->manifest);
        free(a);
}

static void teardown(void)
{
        for (unsigned i = 0; i < APPS_MAX; i++)
                app_free(apps[i]);
        broker = broker_free(broker);
        /* Every handle the calls made is closed: the loop ends, and closes cleanly. */
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
        bus = bus_free(bus);
        audit = audit_close(audit);
        grants = grants_free(grants);
        nftw(state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        strcpy(state_dir + strlen(state_dir) - 6, "XXXXXX");
}

/* Installs and attaches app id with permissions (the inside of a JSON array); the
 * dangerous rights in grant[] (NULL-terminated, may be NULL) are granted by the user. */
static TestApp *app_new(const char *id, const char *permissions, const char *const *grant)
{
        TestApp *a = calloc(1, sizeof *a);
        const char *bad = NULL, *why = NULL;
        BrokerAppInfo info = {};
        ManifestError err;
        char json[4096];
        int sv[2], r;

        ck_assert_ptr_nonnull(a);
        snprintf(a->id, sizeof a->id, "%s", id);
        snprintf(json, sizeof json,
                 "{\"id\":\"%s\",\"runtime\":\"native\",\"entry\":\"x\",\"permissions\":[%s],"
                 "\"limits\":{\"storage\":\"1M\",\"tmp\":\"2M\"}}",
                 id, permissions);
        r = manifest_parse(json, strlen(json), "test", &a->manifest, &err);
        ck_assert_msg(r == 0, "manifest: %s: %s", err.key, err.message);
        r = grants_install(grants, a->manifest, false, grants_now_ms(), &bad, &why);
        ck_assert_msg(r == 0, "grants_install: %s (%s: %s)", strerror(-r), bad, why);
        for (; grant && *grant; grant++)
                ck_assert_int_eq(
                        grants_grant(grants, id, *grant, false, GRANT_BY_USER, grants_now_ms()), 0);
        /* These tests are about ipc, not about who may reach whom (test-grants.c):
         * every right the manifest asks for is granted, reaching or not. */
        STRV_FOREACH (p, a->manifest->permissions)
                (void)grants_grant(grants, id, *p, false, GRANT_BY_USER, grants_now_ms());
        snprintf(a->data_dir, sizeof a->data_dir, "%s/%s.data", state_dir, id);
        ck_assert(mkdir(a->data_dir, 0700) == 0 || errno == EEXIST);

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        a->fd = sv[1];
        a->next_id = 1;
        info.manifest = a->manifest;
        info.app_dir = state_dir;
        info.data_dir = a->data_dir;
        info.host_uid = 0;
        info.pid = 0;
        info.pidfd = -1;
        info.started_ms = grants_now_ms();
        ck_assert_int_eq(broker_app_attach(broker, &info, sv[0], &a->app), 0);
        for (unsigned i = 0; i < APPS_MAX; i++)
                if (!apps[i]) {
                        apps[i] = a;
                        return a;
                }
        ck_abort_msg("too many apps");
        return NULL;
}

/* Reads every frame waiting on a's socket into its inbox. */
static void app_read(TestApp *a)
{
        static uint8_t buf[CHANNEL_DATAGRAM_MAX];

        for (;;) {
                ChannelFrame cf;
                int fds[CHANNEL_FDS_MAX];
                Frame *f, **tail;
                int r = channel_recv(a->fd, &cf, buf, fds, CHANNEL_FDS_MAX, MSG_DONTWAIT);

                if (r == -EAGAIN || r == -ECONNRESET)
                        return;
                ck_assert_msg(r == 0, "channel_recv: %s", strerror(-r));
                f = calloc(1, sizeof *f);
                ck_assert_ptr_nonnull(f);
                f->opcode = cf.opcode;
                f->flags = cf.flags;
                f->id = cf.request_id;
                f->fd = cf.n_fds > 0 ? fds[0] : -1;
                for (unsigned i = 1; i < cf.n_fds; i++)
                        close(fds[i]);
                if (cf.flags & CHANNEL_FLAG_ERROR)
                        ck_assert_int_eq(channel_parse_error(cf.body, cf.body_len, &f->err,
                                                             f->err_message, sizeof f->err_message),
                                         0);
                else
                        ck_assert_int_eq(wire_unpack(&cf, &f->msg), 0);
                for (tail = &a->inbox; *tail; tail = &(*tail)->next)
                        ;
                *tail = f;
        }
}

/* One step: the loop without blocking, then every reading app's socket. */
static void pump(void)
{
        struct pollfd p[APPS_MAX];
        unsigned n = 0;

        uv_run(&loop, UV_RUN_NOWAIT);
        for (unsigned i = 0; i < APPS_MAX; i++)
                if (apps[i] && !apps[i]->no_read) {
                        app_read(apps[i]);
                        p[n++] = (struct pollfd){.fd = apps[i]->fd, .events = POLLIN};
                }
        /* Sleep a little unless something is readable already. */
        poll(p, n, 1);
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Takes the first frame of a's inbox that is a reply to id (id > 0) or an event with
 * opcode (id 0), pumping for at most timeout_ms; NULL if none came. */
static Frame *take(TestApp *a, uint64_t id, uint16_t opcode, int timeout_ms)
{
        int64_t end = now_ms() + timeout_ms;

        for (;;) {
                for (Frame **p = &a->inbox; *p; p = &(*p)->next) {
                        Frame *f = *p;

                        if (id ? (f->flags & CHANNEL_FLAG_REPLY) && f->id == id
                               : (f->flags & CHANNEL_FLAG_EVENT) && f->opcode == opcode) {
                                *p = f->next;
                                f->next = NULL;
                                return f;
                        }
                }
                if (now_ms() > end)
                        return NULL;
                pump();
        }
}

static uint64_t send_request(TestApp *a, uint16_t opcode, const ProtobufCMessage *req)
{
        static uint8_t body[CHANNEL_BODY_MAX];
        ChannelFrame f = {.opcode = opcode, .request_id = a->next_id++};
        int n = wire_pack(req, body, sizeof body);

        ck_assert_int_ge(n, 0);
        f.body = body;
        f.body_len = (size_t)n;
        ck_assert_int_eq(channel_send(a->fd, &f, NULL, 0, 0), 0);
        return f.request_id;
}

/* Drops every event already in a's inbox and arriving within ms. */
static void drain(TestApp *a, int ms)
{
        int64_t end = now_ms() + ms;

        do
                pump();
        while (now_ms() < end);
        while (a->inbox) {
                Frame *f = a->inbox;

                a->inbox = f->next;
                frame_free(f);
        }
}

/* ---- the object layer, driven directly ---------------------------------------------- */

static unsigned closing_calls, destroy_calls;

static int fake_handle_fd(IpcObject *o, uint32_t modes)
{
        int fd = eventfd(0, EFD_CLOEXEC);

        return fd < 0 ? -errno : fd;
}

static void fake_closing(IpcHandle *h)
{
        ck_assert_ptr_eq(ipc_handle_get(ipc_handle_app(h), ipc_handle_id(h), KIND_ANY), h);
        closing_calls++;
}

static void fake_destroy(IpcObject *o)
{
        destroy_calls++;
        free(ipc_object_data(o));
}

static const IpcKindOps fake_sem = {
        .kind = KIND_SEM,
        .right_name = "ipc.sem",
        .mode_sets = IPC_MODESET(IPC_MODE_RW),
        .handle_fd = fake_handle_fd,
        .handle_closing = fake_closing,
        .destroy = fake_destroy,
};

static const IpcKindOps fake_shm = {
        .kind = KIND_SHM,
        .right_name = "ipc.shm",
        .mode_sets = IPC_MODESET(IPC_MODE_READ) | IPC_MODESET(IPC_MODE_RW),
        .handle_fd = fake_handle_fd,
        .destroy = fake_destroy,
};

/* A BrokerCall as the core hands a handler one, with right (parsed here) checked. */
typedef struct FakeCall {
        BrokerCall c;
        CapabilityRight right;
} FakeCall;

static BrokerCall *fake_call(FakeCall *f, TestApp *a, const char *right)
{
        memset(f, 0, sizeof *f);
        f->c.app = a->app;
        if (right) {
                ck_assert_int_eq(capability_right_parse(right, &f->right, NULL), 0);
                f->c.checked = &f->right;
        }
        return &f->c;
}

static void fake_call_done(FakeCall *f)
{
        json_decref(f->c.audit_fields);
        f->c.audit_fields = NULL;
}

static IpcObject *make(TestApp *a, const IpcKindOps *ops, const char *name,
                       Cella__V1__IpcOffer *const *offers, size_t n, uint64_t bytes, int *ret_error,
                       const char **ret_why)
{
        FakeCall f;
        IpcObject *o;
        int *data = malloc(sizeof *data);

        ck_assert_ptr_nonnull(data);
        o = ipc_object_create(fake_call(&f, a, NULL), ops, name, offers, n, bytes, data, ret_error,
                              ret_why);
        if (!o)
                free(data);
        fake_call_done(&f);
        return o;
}

static IpcHandle *hold(TestApp *a, IpcObject *o, uint32_t modes, const char *right)
{
        CapabilityRight r;
        const char *why;
        IpcHandle *h;
        int err = 0;

        if (right)
                ck_assert_int_eq(capability_right_parse(right, &r, NULL), 0);
        h = ipc_handle_new(a->app, o, modes, right ? &r : NULL, &err, &why);
        ck_assert_msg(h, "ipc_handle_new: %s (%s)", strerror(-err), why ? why : "");
        return h;
}

static unsigned registry_objects(void)
{
        unsigned n;

        ipc_registry_stats(broker, &n, NULL);
        return n;
}

static unsigned registry_pending(void)
{
        unsigned n;

        ipc_registry_stats(broker, NULL, &n);
        return n;
}

START_TEST(test_name_check)
{
        static const struct {
                const char *name;
                int error;
        } cases[] = {
                {"org.a.app.buf", 0},
                {"org.a.app.x.y-z_1", 0},
                {"org.a.app", -EPERM},       /* the id alone: no name after it */
                {"org.a.app.", -EINVAL},     /* empty segment */
                {"org.a.apple.buf", -EPERM}, /* a prefix of the id's text, not the id */
                {"org.a.buf", -EPERM},
                {"org.b.app.buf", -EPERM},
                {"org.a.app.*", -EINVAL}, /* no globs in a name */
                {"org.a.app.b/c", -EINVAL},
                {"org.a.app..b", -EINVAL},
                {"", -EINVAL},
        };
        char longname[300];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *why = NULL;
                int err = 0;
                bool ok = ipc_name_check("org.a.app", cases[i].name, &err, &why);

                ck_assert_msg(ok == (cases[i].error == 0) && (ok || err == cases[i].error),
                              "%s: ok %d err %d", cases[i].name, ok, err);
                ck_assert(ok || (why && why[0]));
        }
        /* 255 bytes is the most; 256 is refused. */
        memset(longname, 'x', sizeof longname);
        memcpy(longname, "org.a.app.", 10);
        longname[255] = '\0';
        {
                const char *why;
                int err;

                for (size_t i = 70; i < 255; i += 60)
                        longname[i] = '.'; /* segments of at most 59 bytes */
                ck_assert(ipc_name_check("org.a.app", longname, &err, &why));
                memset(longname + 255, 'y', 1);
                longname[256] = '\0';
                ck_assert(!ipc_name_check("org.a.app", longname, &err, &why));
                ck_assert_int_eq(err, -EINVAL);
        }
}
END_TEST

START_TEST(test_offers_check)
{
        Cella__V1__IpcOffer a = CELLA__V1__IPC_OFFER__INIT, *p = &a;
        Cella__V1__IpcOffer *many[IPC_OFFERS_MAX + 1];
        const char *why;

        a.app = (char *)"org.b.*";
        a.modes = IPC_MODE_READ;
        ck_assert_int_eq(ipc_offers_check(&fake_shm, &p, 1, &why), 0);
        a.modes = IPC_MODE_WRITE; /* shm: WRITE alone is not a mode set */
        ck_assert_int_eq(ipc_offers_check(&fake_shm, &p, 1, &why), -EINVAL);
        a.modes = IPC_MODE_RW;
        ck_assert_int_eq(ipc_offers_check(&fake_shm, &p, 1, &why), 0);
        a.modes = 4; /* an unknown bit */
        ck_assert_int_eq(ipc_offers_check(&fake_shm, &p, 1, &why), -EINVAL);
        a.modes = IPC_MODE_READ;
        ck_assert_int_eq(ipc_offers_check(&fake_sem, &p, 1, &why), -EINVAL); /* sem: RW only */
        a.topic = (char *)"org.a.news.*";
        ck_assert_int_eq(ipc_offers_check(&fake_shm, &p, 1, &why), -EINVAL); /* both */
        a.app = (char *)"";
        ck_assert_int_eq(ipc_offers_check(&fake_shm, &p, 1, &why), 0);
        a.topic = (char *)"";
        ck_assert_int_eq(ipc_offers_check(&fake_shm, &p, 1, &why), -EINVAL); /* neither */
        a.app = (char *)"not an id";
        ck_assert_int_eq(ipc_offers_check(&fake_shm, &p, 1, &why), -EINVAL);
        a.app = (char *)"org.b.app";
        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                many[i] = &a;
        ck_assert_int_eq(ipc_offers_check(&fake_shm, many, IPC_OFFERS_MAX, &why), 0);
        ck_assert_int_eq(ipc_offers_check(&fake_shm, many, IPC_OFFERS_MAX + 1, &why), -EINVAL);
}
END_TEST

/* Creation, handle numbers (from 1, never reused), lookup by kind, release. */
START_TEST(test_object_handles)
{
        TestApp *a = app_new("org.a.app", "\"ipc.sem:org.a.app.s\"", NULL);
        const char *why;
        IpcObject *o, *o2;
        IpcHandle *h1, *h2, *h3;
        int err;

        destroy_calls = closing_calls = 0;
        o = make(a, &fake_sem, "org.a.app.s", NULL, 0, 0, &err, &why);
        ck_assert_ptr_nonnull(o);
        ck_assert_str_eq(ipc_object_name(o), "org.a.app.s");
        ck_assert_str_eq(ipc_object_owner(o), "org.a.app");
        /* The name is taken while it lives. */
        ck_assert_ptr_null(make(a, &fake_sem, "org.a.app.s", NULL, 0, 0, &err, &why));
        ck_assert_int_eq(err, -EEXIST);
        /* Outside the creator's namespace. */
        ck_assert_ptr_null(make(a, &fake_sem, "org.b.app.s", NULL, 0, 0, &err, &why));
        ck_assert_int_eq(err, -EPERM);

        h1 = hold(a, o, IPC_MODE_RW, "ipc.sem:org.a.app.s");
        h2 = hold(a, o, IPC_MODE_RW, "ipc.sem:org.a.app.s");
        ck_assert_uint_eq(ipc_handle_id(h1), 1);
        ck_assert_uint_eq(ipc_handle_id(h2), 2);
        ck_assert_ptr_eq(ipc_handle_get(a->app, 1, KIND_SEM), h1);
        ck_assert_ptr_eq(ipc_handle_get(a->app, 1, KIND_ANY), h1);
        ck_assert_ptr_null(ipc_handle_get(a->app, 1, KIND_SHM)); /* another kind */
        ck_assert_ptr_null(ipc_handle_get(a->app, 3, KIND_ANY));
        ck_assert_ptr_null(ipc_handle_get(a->app, 0, KIND_ANY));
        ipc_handle_close(h1, IPC_CLOSE_BY_APP);
        ck_assert_uint_eq(closing_calls, 1);
        ck_assert_ptr_null(ipc_handle_get(a->app, 1, KIND_ANY));
        h3 = hold(a, o, IPC_MODE_RW, NULL);
        ck_assert_uint_eq(ipc_handle_id(h3), 3); /* 1 is not reused */
        ck_assert_uint_eq(registry_objects(), 1);

        /* Destroyed: the name is free at once, the object lives on its handles. */
        ipc_object_destroy(o);
        ck_assert(ipc_object_destroyed(o));
        ck_assert_uint_eq(destroy_calls, 0);
        o2 = make(a, &fake_sem, "org.a.app.s", NULL, 0, 0, &err, &why);
        ck_assert_ptr_nonnull(o2);
        ck_assert_uint_eq(registry_objects(), 2);
        ipc_handle_close(h2, IPC_CLOSE_BY_APP);
        ipc_handle_close(h3, IPC_CLOSE_BY_APP);
        ck_assert_uint_eq(destroy_calls, 1);
        ck_assert_uint_eq(registry_objects(), 1);
        /* A created object nobody took a handle of goes with release. */
        ipc_object_release(o2);
        ck_assert_uint_eq(destroy_calls, 2);
        ck_assert_uint_eq(registry_objects(), 0);
        /* No event for closes the app asked for. */
        drain(a, 5);
}
END_TEST

static bool why_names(const char *why, const char *key, const char *figure)
{
        return why && strstr(why, key) && strstr(why, figure);
}

START_TEST(test_quotas)
{
        TestApp *a = app_new("org.a.app", "\"ipc.sem:org.a.app.**\"", NULL);
        Cella__V1__IpcUsage u = CELLA__V1__IPC_USAGE__INIT;
        IpcObject *o[OBJECTS_MAX], *shm;
        IpcHandle *h[HANDLES_MAX];
        char name[64];
        const char *why;
        int err;

        for (unsigned i = 0; i < OBJECTS_MAX; i++) {
                snprintf(name, sizeof name, "org.a.app.s%u", i);
                o[i] = make(a, &fake_sem, name, NULL, 0, 0, &err, &why);
                ck_assert_ptr_nonnull(o[i]);
        }
        ck_assert_ptr_null(make(a, &fake_sem, "org.a.app.one-more", NULL, 0, 0, &err, &why));
        ck_assert_int_eq(err, -EDQUOT);
        ck_assert_msg(why_names(why, "ipc.objects_max", "4"), "%s", why);
        ipc_object_release(o[OBJECTS_MAX - 1]);

        /* Shared memory bytes: the whole quota fits, one byte more does not. */
        shm = make(a, &fake_shm, "org.a.app.big", NULL, 0, SHM_BYTES_MAX + 1ull, &err, &why);
        ck_assert_ptr_null(shm);
        ck_assert_int_eq(err, -EDQUOT);
        ck_assert_msg(why_names(why, "ipc.shm_bytes_max", "1048576"), "%s", why);
        shm = make(a, &fake_shm, "org.a.app.big", NULL, 0, SHM_BYTES_MAX, &err, &why);
        ck_assert_ptr_nonnull(shm);
        ipc_usage(a->app, &u);
        ck_assert_uint_eq(u.shm_bytes, SHM_BYTES_MAX);
        ck_assert_uint_eq(u.objects, OBJECTS_MAX);
        ck_assert_uint_eq(u.objects_max, OBJECTS_MAX);
        ipc_object_release(shm);
        ipc_usage(a->app, &u);
        ck_assert_uint_eq(u.shm_bytes, 0);
        ck_assert_uint_eq(u.objects, OBJECTS_MAX - 1);

        /* Handles. */
        for (unsigned i = 0; i < HANDLES_MAX; i++)
                h[i] = hold(a, o[i % (OBJECTS_MAX - 1)], IPC_MODE_RW, NULL);
        ck_assert_ptr_null(ipc_handle_new(a->app, o[0], IPC_MODE_RW, NULL, &err, &why));
        ck_assert_int_eq(err, -EDQUOT);
        ck_assert_msg(why_names(why, "ipc.handles_max", "6"), "%s", why);
        ipc_usage(a->app, &u);
        ck_assert_uint_eq(u.handles, HANDLES_MAX);

        /* Queued bytes: charged and given back; over the limit refused. */
        ck_assert_int_eq(ipc_object_charge_queued(o[0], 1000, &why), 0);
        ck_assert_int_eq(
                ipc_object_charge_queued(o[0], (int64_t)BROKER_IPC_QUEUED_BYTES_DEFAULT, &why),
                -EDQUOT);
        ck_assert_msg(why_names(why, "ipc.queued_bytes_max", "1000"), "%s", why);
        ipc_usage(a->app, &u);
        ck_assert_uint_eq(u.queued_bytes, 1000);
        ck_assert_int_eq(ipc_object_charge_queued(o[0], -1000, &why), 0);
        ipc_usage(a->app, &u);
        ck_assert_uint_eq(u.queued_bytes, 0);
        for (unsigned i = 0; i < HANDLES_MAX; i++)
                ipc_handle_close(h[i], IPC_CLOSE_BY_APP);
        ck_assert_uint_eq(registry_objects(), 0);
}
END_TEST

/* Who may open: the creator; apps an offer's app pattern matches, or whose
 * bus.subscribe right covers its topic pattern; with the offered modes only. */
START_TEST(test_open_offers)
{
        TestApp *a = app_new("org.a.app", "\"ipc.shm:org.a.app.m\"", NULL);
        TestApp *b = app_new("org.b.app", "\"ipc.shm:org.a.app.m\"", NULL);
        TestApp *c = app_new("org.c.app",
                             "\"ipc.shm:org.a.app.m\", \"bus.subscribe:org.a.app.news.**\"", NULL);
        TestApp *d = app_new("org.d.app",
                             "\"ipc.shm:org.a.app.m\", \"bus.subscribe:org.a.app.news.x\"", NULL);
        Cella__V1__IpcOffer to_b = CELLA__V1__IPC_OFFER__INIT, to_news = CELLA__V1__IPC_OFFER__INIT;
        Cella__V1__IpcOffer *offers[] = {&to_b, &to_news};
        const char *why;
        FakeCall f;
        IpcObject *o;
        IpcHandle *h;
        int err;

        to_b.app = (char *)"org.b.*";
        to_b.modes = IPC_MODE_READ;
        to_news.topic = (char *)"org.a.app.news.*";
        to_news.modes = IPC_MODE_RW;
        o = make(a, &fake_shm, "org.a.app.m", offers, 1, 4096, &err, &why);
        ck_assert_ptr_nonnull(o);
        h = hold(a, o, IPC_MODE_RW, "ipc.shm:org.a.app.m");

#define OPEN(app, modes)                                                                           \
        ({                                                                                         \
                IpcObject *_o = ipc_object_open(fake_call(&f, app, NULL), KIND_SHM, "org.a.app.m", \
                                                modes, &err, &why);                                \
                fake_call_done(&f);                                                                \
                _o;                                                                                \
        })
        ck_assert_ptr_eq(OPEN(a, IPC_MODE_RW), o); /* the creator */
        ck_assert_ptr_eq(OPEN(b, IPC_MODE_READ), o);
        ck_assert_ptr_null(OPEN(b, IPC_MODE_RW)); /* wider than offered */
        ck_assert_int_eq(err, -EPERM);
        ck_assert_ptr_null(OPEN(b, IPC_MODE_WRITE)); /* not a mode set of shm */
        ck_assert_int_eq(err, -EINVAL);
        ck_assert_ptr_null(OPEN(c, IPC_MODE_READ)); /* no offer to c yet */
        ck_assert_int_eq(err, -EPERM);
        ck_assert_msg(why && strstr(why, "offer"), "%s", why);
        ck_assert_ptr_null(ipc_object_open(fake_call(&f, b, NULL), KIND_SEM, "org.a.app.m",
                                           IPC_MODE_RW, &err, &why));
        fake_call_done(&f);
        ck_assert_int_eq(err, -ENOENT); /* the name is of another kind */

        ck_assert_int_eq(ipc_object_set_offers(o, offers, 2, &why), 0);
        ck_assert_ptr_eq(OPEN(c, IPC_MODE_RW), o); /* c's bus.subscribe covers the topic */
        /* d subscribes to one topic only: its right does not cover the whole pattern. */
        ck_assert_ptr_null(OPEN(d, IPC_MODE_READ));
        ck_assert_int_eq(err, -EPERM);

        /* Destroyed: nobody opens it, not even its creator. */
        ipc_object_destroy(o);
        ck_assert_ptr_null(OPEN(a, IPC_MODE_RW));
        ck_assert_int_eq(err, -ENOENT);
#undef OPEN
        ipc_handle_close(h, IPC_CLOSE_BY_APP);
        ck_assert_uint_eq(registry_objects(), 0);
}
END_TEST

/* Revoking the right a handle was made under closes it, with EVENT_IPC_CLOSED. */
START_TEST(test_revoke_closes)
{
        TestApp *a = app_new("org.a.app", "\"ipc.shm:org.a.app.m\"", NULL);
        TestApp *b = app_new("org.b.app", "\"ipc.shm:org.a.app.m\"", NULL);
        Cella__V1__IpcClosedEvent *ev;
        const char *why;
        IpcObject *o;
        IpcHandle *ha, *hb;
        Frame *f;
        int err;

        o = make(a, &fake_shm, "org.a.app.m", NULL, 0, 4096, &err, &why);
        ha = hold(a, o, IPC_MODE_RW, "ipc.shm:org.a.app.m");
        hb = hold(b, o, IPC_MODE_READ, "ipc.shm:org.a.app.m");
        ck_assert_uint_eq(ipc_handle_id(hb), 1);
        ck_assert_int_gt(grants_revoke(grants, "org.b.app", "ipc.shm:org.a.app.m", NULL), 0);
        ck_assert_int_ge(broker_grants_changed(broker, "org.b.app"), 1);
        f = take(b, 0, EV_CLOSED, WAIT_MS);
        ck_assert_ptr_nonnull(f);
        ev = (Cella__V1__IpcClosedEvent *)f->msg;
        ck_assert_uint_eq(ev->handle, 1);
        ck_assert_str_eq(ev->reason, "revoked");
        frame_free(f);
        ck_assert_ptr_null(ipc_handle_get(b->app, 1, KIND_ANY));
        /* a's handle is on a's own right: untouched. */
        ck_assert_ptr_eq(ipc_handle_get(a->app, ipc_handle_id(ha), KIND_SHM), ha);
        ck_assert_uint_eq(registry_objects(), 1);
        ipc_handle_close(ha, IPC_CLOSE_BY_APP);
        ck_assert_uint_eq(registry_objects(), 0);
}
END_TEST

/* Pending offers: the event, the per-sender bound, expiry, and both sides' exits. */
START_TEST(test_pending)
{
        TestApp *a = app_new("org.a.app", "\"ipc.shm:org.a.app.m\"", NULL);
        TestApp *b = app_new("org.b.app", "\"ipc.shm:org.a.app.m\"", NULL);
        Cella__V1__IpcOfferedEvent *ev;
        uint64_t t1, t2, t3;
        const char *why;
        IpcObject *o;
        IpcHandle *ha;
        int64_t end;
        Frame *f;
        int err, fd;

        destroy_calls = 0;
        o = make(a, &fake_shm, "org.a.app.m", NULL, 0, 4096, &err, &why);
        ha = hold(a, o, IPC_MODE_RW, NULL);
        fd = eventfd(0, EFD_CLOEXEC);
        ck_assert_int_eq(ipc_pending_new(a->app, b->app, o, IPC_MODE_READ, fd, 60000, &t1, &why),
                         0);
        f = take(b, 0, EV_OFFERED, WAIT_MS);
        ck_assert_ptr_nonnull(f);
        ev = (Cella__V1__IpcOfferedEvent *)f->msg;
        ck_assert_uint_eq(ev->token, t1);
        ck_assert_str_eq(ev->name, "org.a.app.m");
        ck_assert_str_eq(ev->from, "org.a.app");
        ck_assert_uint_eq(ev->modes, IPC_MODE_READ);
        ck_assert_int_eq(ev->kind, KIND_SHM);
        ck_assert_uint_eq(ev->expires_ms, 60000);
        frame_free(f);
        ck_assert_int_eq(ipc_pending_new(a->app, b->app, o, IPC_MODE_READ, -1, 1, &t2, &why), 0);
        ck_assert_int_eq(ipc_pending_new(a->app, b->app, o, IPC_MODE_READ, -1, 1, &t3, &why),
                         -EDQUOT);
        ck_assert_msg(why_names(why, "ipc.pending_max", "2"), "%s", why);
        ck_assert_uint_eq(registry_pending(), 2);
        /* Only b finds b's tokens. */
        ck_assert_ptr_null(ipc_pending_find(ipc_registry_of(broker), a->app, t1));
        ck_assert_ptr_nonnull(ipc_pending_find(ipc_registry_of(broker), b->app, t1));
        /* t2 expires after 1 ms. */
        end = now_ms() + WAIT_MS;
        while (registry_pending() > 1 && now_ms() < end)
                pump();
        ck_assert_uint_eq(registry_pending(), 1);
        ck_assert_ptr_null(ipc_pending_find(ipc_registry_of(broker), b->app, t2));

        /* A target whose channel is gone hears of nothing: the offer is refused, and
         * nothing is kept. */
        {
                TestApp *gone = app_new("org.c.app", "\"timer\"", NULL);
                BrokerAppStats st = {};
                uint64_t t4 = 0;

                gone->no_read = true; /* the pump leaves it alone */
                gone->fd = safe_close(gone->fd);
                end = now_ms() + WAIT_MS;
                do {
                        pump();
                        broker_app_stats(gone->app, &st);
                } while (!st.closed && now_ms() < end);
                ck_assert(st.closed);
                ck_assert_int_eq(ipc_pending_new(a->app, gone->app, o, IPC_MODE_READ,
                                                 eventfd(0, EFD_CLOEXEC), 1000, &t4, &why),
                                 -EAGAIN);
                ck_assert_uint_eq(registry_pending(), 1);
                app_free(gone);
        }

        /* The object outlives its last handle while an offer holds it... */
        ipc_handle_close(ha, IPC_CLOSE_BY_APP);
        ck_assert_uint_eq(registry_objects(), 1);
        ck_assert_uint_eq(destroy_calls, 0);
        /* ...and goes with the offer when the target exits. */
        app_free(b);
        ck_assert_uint_eq(registry_pending(), 0);
        ck_assert_uint_eq(registry_objects(), 0);
        ck_assert_uint_eq(destroy_calls, 1);
}
END_TEST

/* An app's exit closes its handles (no event to it), frees what nobody else holds,
 * drops its offers, and tells the other end of a pipe "peer-gone". */
START_TEST(test_detach)
{
        static const IpcKindOps fake_pipe = {
                .kind = KIND_PIPE,
                .right_name = "ipc.pipe",
                .mode_sets = IPC_MODESET(IPC_MODE_READ) | IPC_MODESET(IPC_MODE_WRITE),
                .destroy = fake_destroy,
        };
        TestApp *a = app_new("org.a.app", "\"ipc.shm:org.a.app.**\"", NULL);
        TestApp *b = app_new("org.b.app", "\"ipc.shm:org.a.app.m\"", NULL);
        Cella__V1__IpcUsage u = CELLA__V1__IPC_USAGE__INIT;
        IpcObject *shm, *solo, *pipe;
        IpcHandle *hb, *pb;
        const char *why;
        uint64_t token, pb_id;
        Frame *f;
        int err;

        shm = make(a, &fake_shm, "org.a.app.m", NULL, 0, 8192, &err, &why);
        solo = make(a, &fake_shm, "org.a.app.solo", NULL, 0, 4096, &err, &why);
        pipe = make(a, &fake_pipe, "org.a.app.p", NULL, 0, 0, &err, &why);
        (void)hold(a, shm, IPC_MODE_RW, NULL);
        (void)hold(a, solo, IPC_MODE_RW, NULL);
        (void)hold(a, pipe, IPC_MODE_WRITE, NULL);
        hb = hold(b, shm, IPC_MODE_READ, NULL);
        pb = hold(b, pipe, IPC_MODE_READ, NULL);
        pb_id = ipc_handle_id(pb);
        ck_assert_int_eq(
                ipc_pending_new(a->app, b->app, shm, IPC_MODE_READ, -1, 60000, &token, &why), 0);
        ck_assert_uint_eq(registry_objects(), 3);
        app_free(a);
        /* solo and the pipe went; shm lives on b's handle, still charged to a's id. */
        ck_assert_uint_eq(registry_objects(), 1);
        ck_assert_uint_eq(registry_pending(), 0);
        f = take(b, 0, EV_CLOSED, WAIT_MS);
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(((Cella__V1__IpcClosedEvent *)f->msg)->handle, pb_id);
        ck_assert_str_eq(((Cella__V1__IpcClosedEvent *)f->msg)->reason, "peer-gone");
        frame_free(f);
        ck_assert_ptr_null(ipc_handle_get(b->app, 2, KIND_ANY));
        a = app_new("org.a.app", "\"ipc.shm:org.a.app.**\"", NULL);
        ipc_usage(a->app, &u);
        ck_assert_uint_eq(u.objects, 1);
        ck_assert_uint_eq(u.shm_bytes, 8192);
        ck_assert_uint_eq(u.handles, 0);
        ipc_handle_close(hb, IPC_CLOSE_BY_APP);
        ck_assert_uint_eq(registry_objects(), 0);
        ipc_usage(a->app, &u);
        ck_assert_uint_eq(u.objects, 0);
        ck_assert_uint_eq(u.shm_bytes, 0);
}
END_TEST

/* ---- the calls, through the channel ------------------------------------------------- */

#define OP(x) CELLA__V1__OPCODE__OPCODE_##x

/* The last error message a refused call got. */
static char last_message[256];

/* A request with one fd (taken: closed here after the send). */
static int call_fd(TestApp *a, uint16_t opcode, const ProtobufCMessage *req, int fd, Frame **ret)
{
        static uint8_t body[CHANNEL_BODY_MAX];
        ChannelFrame f = {.opcode = opcode, .request_id = a->next_id++, .n_fds = 1};
        int n = wire_pack(req, body, sizeof body);

        ck_assert_int_ge(n, 0);
        f.body = body;
        f.body_len = (size_t)n;
        ck_assert_int_eq(channel_send(a->fd, &f, &fd, 1, 0), 0);
        close(fd);
        {
                Frame *rf = take(a, f.request_id, 0, WAIT_MS);
                int r;

                ck_assert_ptr_nonnull(rf);
                r = rf->err;
                snprintf(last_message, sizeof last_message, "%s", rf->err_message);
                if (r == 0 && ret)
                        *ret = rf;
                else
                        frame_free(rf);
                return r;
        }
}

static int call_msg(TestApp *a, uint16_t opcode, const ProtobufCMessage *req, Frame **ret)
{
        uint64_t id = send_request(a, opcode, req);
        Frame *f = take(a, id, 0, WAIT_MS);
        int r;

        ck_assert_ptr_nonnull(f);
        r = f->err;
        snprintf(last_message, sizeof last_message, "%s", f->err_message);
        if (r == 0 && ret)
                *ret = f;
        else
                frame_free(f);
        return r;
}

/* A memfd of size bytes made as an app does (libcella's cella_shm_create()):
 * sealable, not executable, every page allocated unless sparse. */
static int memfd_of(uint64_t size, bool sparse)
{
        int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x0008u /* NOEXEC_SEAL */);

        if (fd < 0) /* a kernel before 6.3: no MFD_NOEXEC_SEAL */
                fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
        if (!sparse)
                ck_assert_int_eq(fallocate(fd, 0, 0, (off_t)size), 0);
        return fd;
}

static uint64_t shm_create_call(TestApp *a, const char *name, uint64_t size, int fd,
                                Cella__V1__IpcOffer **offers, size_t n_offers, bool ro,
                                int *ret_err)
{
        Cella__V1__IpcShmCreateRequest req = CELLA__V1__IPC_SHM_CREATE_REQUEST__INIT;
        Frame *f = NULL;
        uint64_t h;
        int r;

        req.name = (char *)name;
        req.size_bytes = size;
        req.offers = offers;
        req.n_offers = n_offers;
        req.read_only_sealed = ro;
        r = call_fd(a, OP(IPC_SHM_CREATE), &req.base, fd, &f);
        if (ret_err)
                *ret_err = r;
        if (r < 0)
                return 0;
        ck_assert_int_lt(f->fd, 0); /* the creator keeps its own fd */
        h = ((Cella__V1__IpcHandleReply *)f->msg)->handle;
        frame_free(f);
        return h;
}

static uint64_t shm_open_call(TestApp *a, const char *name, uint32_t modes, int *ret_fd,
                              int *ret_err)
{
        Cella__V1__IpcOpenRequest req = CELLA__V1__IPC_OPEN_REQUEST__INIT;
        Frame *f = NULL;
        uint64_t h;
        int r;

        req.name = (char *)name;
        req.modes = modes;
        r = call_msg(a, OP(IPC_SHM_OPEN), &req.base, &f);
        *ret_err = r;
        if (r < 0)
                return 0;
        ck_assert_int_ge(f->fd, 0);
        *ret_fd = TAKE_FD(f->fd);
        h = ((Cella__V1__IpcHandleReply *)f->msg)->handle;
        frame_free(f);
        return h;
}

static int ipc_close_call(TestApp *a, uint64_t handle, bool destroy)
{
        Cella__V1__IpcCloseRequest req = CELLA__V1__IPC_CLOSE_REQUEST__INIT;

        req.handle = handle;
        req.destroy = destroy;
        return call_msg(a, OP(IPC_CLOSE), &req.base, NULL);
}

/* The token of the next EVENT_IPC_OFFERED to a (0 if none came). */
static uint64_t offered(TestApp *a, const char *from, const char *name)
{
        Frame *f = take(a, 0, EV_OFFERED, WAIT_MS);
        Cella__V1__IpcOfferedEvent *ev;
        uint64_t t;

        if (!f)
                return 0;
        ev = (Cella__V1__IpcOfferedEvent *)f->msg;
        ck_assert_str_eq(ev->from, from);
        ck_assert_str_eq(ev->name, name);
        t = ev->token;
        frame_free(f);
        return t;
}

static int accept_call(TestApp *a, uint64_t token, int *ret_fd, Cella__V1__IpcHandleReply *ret)
{
        Cella__V1__IpcAcceptRequest req = CELLA__V1__IPC_ACCEPT_REQUEST__INIT;
        Frame *f = NULL;
        int r;

        req.token = token;
        r = call_msg(a, OP(IPC_ACCEPT), &req.base, &f);
        if (r < 0)
                return r;
        ck_assert_int_ge(f->fd, 0);
        *ret_fd = TAKE_FD(f->fd);
        if (ret)
                *ret = *(Cella__V1__IpcHandleReply *)f->msg, ret->name = NULL, ret->owner = NULL,
                ret->peer = NULL;
        frame_free(f);
        return 0;
}

START_TEST(test_pipe_and_channel)
{
        /* Installed (so a's bus.send for it is granted), then gone. */
        TestApp *gone = app_new("org.nobody.app", "\"timer\"", NULL);
        TestApp *a = app_new("org.a.app",
                             "\"ipc.pipe:org.a.app.**\", \"bus.send:org.b.app\", "
                             "\"bus.send:org.nobody.app\"",
                             NULL);
        TestApp *b = app_new("org.b.app", "\"ipc.pipe:org.a.app.**\"", NULL);
        Cella__V1__IpcPipeCreateRequest req = CELLA__V1__IPC_PIPE_CREATE_REQUEST__INIT;
        Cella__V1__IpcHandleReply got;
        Frame *f = NULL;
        int afd, bfd;
        char buf[16];
        uint64_t t;

        /* A pipe: a keeps the read end, b takes the write end. */
        req.name = (char *)"org.a.app.log";
        req.kind = KIND_PIPE;
        req.modes = IPC_MODE_READ;
        req.peer = (char *)"org.b.app";
        req.buffer_bytes = 100000;
        ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, &f), 0);
        afd = TAKE_FD(f->fd);
        ck_assert_int_ge(afd, 0);
        ck_assert_str_eq(((Cella__V1__IpcHandleReply *)f->msg)->peer, "org.b.app");
        frame_free(f);
        /* Capacity rounded up to pages: 100000 -> 102400 or more (a power of 2 pages). */
        ck_assert_int_ge(fcntl(afd, F_GETPIPE_SZ), 100000);
        ck_assert_int_eq(fcntl(afd, F_GETFL) & O_ACCMODE, O_RDONLY);
        t = offered(b, "org.a.app", "org.a.app.log");
        ck_assert_uint_gt(t, 0);
        /* Only b holds the token. */
        ck_assert_int_eq(accept_call(a, t, &bfd, NULL), -ENOENT);
        ck_assert_int_eq(accept_call(b, t, &bfd, &got), 0);
        ck_assert_uint_eq(got.modes, IPC_MODE_WRITE);
        ck_assert_int_eq(fcntl(bfd, F_GETFL) & O_ACCMODE, O_WRONLY);
        ck_assert_int_eq(write(bfd, "hello", 5), 5);
        ck_assert_int_eq(read(afd, buf, sizeof buf), 5);
        ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
        /* Accepted once. */
        ck_assert_int_eq(accept_call(b, t, &bfd, NULL), -ENOENT);
        close(afd);
        close(bfd);
        ck_assert_uint_eq(registry_pending(), 0);

        /* A second pipe of the same name at once: pipes are not opened by name. */
        req.modes = IPC_MODE_WRITE;
        ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, &f), 0);
        ck_assert_int_eq(fcntl(f->fd, F_GETFL) & O_ACCMODE, O_WRONLY);
        frame_free(f);
        ck_assert_uint_gt(offered(b, "org.a.app", "org.a.app.log"), 0);

        /* A channel: packets both ways. */
        req.name = (char *)"org.a.app.chan";
        req.kind = CELLA__V1__IPC_KIND__IPC_KIND_CHANNEL;
        req.modes = IPC_MODE_RW;
        ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, &f), 0);
        afd = TAKE_FD(f->fd);
        frame_free(f);
        t = offered(b, "org.a.app", "org.a.app.chan");
        ck_assert_int_eq(accept_call(b, t, &bfd, &got), 0);
        ck_assert_uint_eq(got.modes, IPC_MODE_RW);
        ck_assert_int_eq(send(afd, "ab", 2, 0), 2);
        ck_assert_int_eq(send(afd, "c", 1, 0), 1);
        ck_assert_int_eq(recv(bfd, buf, sizeof buf, 0), 2); /* packets keep their bounds */
        ck_assert_int_eq(recv(bfd, buf, sizeof buf, 0), 1);
        ck_assert_int_eq(send(bfd, "z", 1, 0), 1);
        ck_assert_int_eq(recv(afd, buf, sizeof buf, 0), 1);
        close(afd);
        close(bfd);

        /* Refusals: a bad mode for the kind, another's name, a peer not running. */
        req.kind = KIND_PIPE;
        req.modes = IPC_MODE_RW;
        ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, NULL), -EINVAL);
        req.modes = IPC_MODE_READ;
        req.name = (char *)"org.b.app.x";
        ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, NULL), -EPERM);
        req.name = (char *)"org.a.app.x";
        req.peer = (char *)"org.nobody.app";
        app_free(gone);
        ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, NULL), -ENOENT);
        req.peer = (char *)"org.b.app";
        req.buffer_bytes = 2u << 20;
        ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, NULL), -EINVAL);
        /* An offer reaches its peer: without bus.send for it, refused (and nothing
         * is made). */
        req.buffer_bytes = 0;
        req.peer = (char *)"org.c.app";
        {
                TestApp *c = app_new("org.c.app", "\"timer\"", NULL);
                unsigned before = registry_objects();

                (void)c;
                ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, NULL), -EPERM);
                ck_assert_uint_eq(registry_objects(), before);
                ck_assert_ptr_null(take(c, 0, EV_OFFERED, 50));
        }
}
END_TEST

/* The accepting app needs its own right for the name. */
START_TEST(test_accept_needs_right)
{
        TestApp *a =
                app_new("org.a.app", "\"ipc.pipe:org.a.app.**\", \"bus.send:org.b.app\"", NULL);
        TestApp *b = app_new("org.b.app", "\"timer\"", NULL);
        Cella__V1__IpcPipeCreateRequest req = CELLA__V1__IPC_PIPE_CREATE_REQUEST__INIT;
        uint64_t t;
        int fd;

        req.name = (char *)"org.a.app.log";
        req.kind = KIND_PIPE;
        req.modes = IPC_MODE_READ;
        req.peer = (char *)"org.b.app";
        ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, NULL), 0);
        t = offered(b, "org.a.app", "org.a.app.log");
        ck_assert_int_eq(accept_call(b, t, &fd, NULL), -EPERM); /* never asked for */
        /* The offer stays for its time; the sender's quota counts it. */
        ck_assert_uint_eq(registry_pending(), 1);
        app_free(a);
        ck_assert_uint_eq(registry_pending(), 0);
        ck_assert_uint_eq(registry_objects(), 0);
}
END_TEST

/* The pending bound: ipc.pending_max offers of one sender wait at most. */
START_TEST(test_pending_quota_call)
{
        TestApp *a =
                app_new("org.a.app", "\"ipc.pipe:org.a.app.**\", \"bus.send:org.b.app\"", NULL);
        TestApp *b = app_new("org.b.app", "\"ipc.pipe:org.a.app.**\"", NULL);
        Cella__V1__IpcPipeCreateRequest req = CELLA__V1__IPC_PIPE_CREATE_REQUEST__INIT;

        (void)b;
        req.name = (char *)"org.a.app.log";
        req.kind = KIND_PIPE;
        req.modes = IPC_MODE_READ;
        req.peer = (char *)"org.b.app";
        for (unsigned i = 0; i < PENDING_MAX; i++)
                ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, NULL), 0);
        ck_assert_int_eq(call_msg(a, OP(IPC_PIPE_CREATE), &req.base, NULL), -EDQUOT);
        ck_assert_msg(strstr(last_message, "ipc.pending_max"), "%s", last_message);
        /* The refused pipe left nothing behind. */
        ck_assert_uint_eq(registry_objects(), PENDING_MAX);
        ck_assert_uint_eq(registry_pending(), PENDING_MAX);
}
END_TEST

START_TEST(test_shm_create_checks)
{
        TestApp *a = app_new("org.a.app", "\"ipc.shm:org.a.app.**\"", NULL);
        char path[PATH_MAX];
        struct stat st;
        uint64_t h;
        int fd, err, keep, seals;

        /* Not a memfd: a file of the state dir. */
        snprintf(path, sizeof path, "%s/plain", state_dir);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_eq(fallocate(fd, 0, 0, 4096), 0);
        shm_create_call(a, "org.a.app.m", 4096, fd, NULL, 0, false, &err);
        ck_assert_int_eq(err, -EINVAL);
        ck_assert_msg(strstr(last_message, "memfd"), "%s", last_message);
        /* A memfd without MFD_ALLOW_SEALING (F_SEAL_SEAL set from birth). */
        fd = memfd_create("x", MFD_CLOEXEC);
        ck_assert_int_eq(ftruncate(fd, 4096), 0);
        shm_create_call(a, "org.a.app.m", 4096, fd, NULL, 0, false, &err);
        ck_assert_int_eq(err, -EINVAL);
        /* Sealed already. */
        fd = memfd_of(4096, false);
        ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW), 0);
        shm_create_call(a, "org.a.app.m", 4096, fd, NULL, 0, false, &err);
        ck_assert_int_eq(err, -EINVAL);
        /* The size differs. */
        shm_create_call(a, "org.a.app.m", 8192, memfd_of(4096, false), NULL, 0, false, &err);
        ck_assert_int_eq(err, -EINVAL);
        /* Not allocated: a sparse memfd, and one allocated only in part. */
        shm_create_call(a, "org.a.app.m", 8192, memfd_of(8192, true), NULL, 0, false, &err);
        ck_assert_int_eq(err, -EINVAL);
        ck_assert_msg(strstr(last_message, "allocated"), "%s", last_message);
        fd = memfd_of(8192, true);
        ck_assert_int_eq(fallocate(fd, 0, 0, 4096), 0);
        shm_create_call(a, "org.a.app.m", 8192, fd, NULL, 0, false, &err);
        ck_assert_int_eq(err, -EINVAL);
        /* Over the quota: refused before anything is sealed. */
        fd = memfd_of(4096, false);
        keep = dup(fd);
        shm_create_call(a, "org.a.app.m", SHM_BYTES_MAX + 4096ull, fd, NULL, 0, false, &err);
        ck_assert_int_eq(err, -EDQUOT);
        ck_assert_msg(strstr(last_message, "ipc.shm_bytes_max"), "%s", last_message);
        ck_assert_int_eq(fcntl(keep, F_GET_SEALS) & ~F_SEAL_EXEC, 0);
        ck_assert_uint_eq(registry_objects(), 0);

        /* A good one: sealed, mode 0600. */
        h = shm_create_call(a, "org.a.app.m", 4096, keep, NULL, 0, false, &err);
        ck_assert_int_eq(err, 0);
        ck_assert_uint_eq(h, 1);
        fd = memfd_of(4096, false);
        keep = dup(fd);
        h = shm_create_call(a, "org.a.app.ro", 4096, fd, NULL, 0, true, &err);
        ck_assert_int_eq(err, 0);
        seals = fcntl(keep, F_GET_SEALS);
        ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL | F_SEAL_WRITE),
                         F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL | F_SEAL_WRITE);
        ck_assert_int_eq(fstat(keep, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0600);
        ck_assert_int_lt(ftruncate(keep, 8192), 0);
        ck_assert_int_lt(write(keep, "x", 1), 0);
        close(keep);
        /* Read-only sealed: no handle, not even the creator's, and no offer writes. */
        {
                Cella__V1__IpcOffer rw = CELLA__V1__IPC_OFFER__INIT, *offers[] = {&rw};
                Cella__V1__IpcOfferRequest oreq = CELLA__V1__IPC_OFFER_REQUEST__INIT;
                int rofd;

                shm_open_call(a, "org.a.app.ro", IPC_MODE_RW, &rofd, &err);
                ck_assert_int_eq(err, -EPERM);
                rw.app = (char *)"org.b.app";
                rw.modes = IPC_MODE_RW;
                oreq.handle = h;
                oreq.offers = offers;
                oreq.n_offers = 1;
                ck_assert_int_eq(call_msg(a, OP(IPC_OFFER), &oreq.base, NULL), -EINVAL);
                shm_create_call(a, "org.a.app.ro3", 4096, memfd_of(4096, false), offers, 1, true,
                                &err);
                ck_assert_int_eq(err, -EINVAL);
                ck_assert_uint_gt(shm_open_call(a, "org.a.app.ro", IPC_MODE_READ, &rofd, &err), 0);
                close(rofd);
        }
        /* A read-only registration of a memfd mapped writable is refused (EBUSY). */
        fd = memfd_of(4096, false);
        {
                void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

                ck_assert_ptr_ne(p, MAP_FAILED);
                shm_create_call(a, "org.a.app.ro2", 4096, dup(fd), NULL, 0, true, &err);
                ck_assert_int_eq(err, -EBUSY);
                munmap(p, 4096);
                close(fd);
        }
        /* The name is taken. */
        shm_create_call(a, "org.a.app.m", 4096, memfd_of(4096, false), NULL, 0, false, &err);
        ck_assert_int_eq(err, -EEXIST);
}
END_TEST

START_TEST(test_shm_share)
{
        TestApp *a = app_new("org.a.app", "\"ipc.shm:org.a.app.**\", \"bus.send:org.c.app\"", NULL);
        TestApp *b = app_new("org.b.app", "\"ipc.shm:org.a.app.m\", \"bus.send:org.c.app\"", NULL);
        TestApp *c = app_new("org.c.app", "\"ipc.shm:org.a.app.m\"", NULL);
        TestApp *d = app_new("org.d.app", "\"ipc.shm:org.a.app.m\"", NULL);
        Cella__V1__IpcOffer to_b = CELLA__V1__IPC_OFFER__INIT, *offers[] = {&to_b};
        Cella__V1__IpcPassRequest pass = CELLA__V1__IPC_PASS_REQUEST__INIT;
        Cella__V1__IpcHandleReply got;
        Cella__V1__IpcListRequest lreq = CELLA__V1__IPC_LIST_REQUEST__INIT;
        Cella__V1__IpcListReply *list;
        int fd = memfd_of(8192, false), afd = dup(fd), bfd, bfd2, cfd, err;
        uint64_t ha, hb, hb2, t;
        Frame *f;
        char *pa, *pb;

        to_b.app = (char *)"org.b.app";
        to_b.modes = IPC_MODE_READ;
        ha = shm_create_call(a, "org.a.app.m", 8192, fd, offers, 1, false, &err);
        ck_assert_int_eq(err, 0);
        pa = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, afd, 0);
        ck_assert_ptr_ne(pa, MAP_FAILED);
        strcpy(pa, "zero copy");

        /* b: READ offered, RW not. */
        shm_open_call(b, "org.a.app.m", IPC_MODE_RW, &bfd, &err);
        ck_assert_int_eq(err, -EPERM);
        hb = shm_open_call(b, "org.a.app.m", IPC_MODE_READ, &bfd, &err);
        ck_assert_int_eq(err, 0);
        ck_assert_int_eq(fcntl(bfd, F_GETFL) & O_ACCMODE, O_RDONLY);
        pb = mmap(NULL, 8192, PROT_READ, MAP_SHARED, bfd, 0);
        ck_assert_ptr_ne(pb, MAP_FAILED);
        ck_assert_str_eq(pb, "zero copy");
        strcpy(pa, "changed");
        ck_assert_str_eq(pb, "changed"); /* the same pages */
        ck_assert_ptr_eq(mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, bfd, 0), MAP_FAILED);
        ck_assert_int_lt(mprotect(pb, 8192, PROT_READ | PROT_WRITE), 0);
        /* b's open file description is its own: not the creator's. */
        hb2 = shm_open_call(b, "org.a.app.m", IPC_MODE_READ, &bfd2, &err);
        ck_assert_uint_eq(hb2, hb + 1);
        ck_assert_int_eq(fcntl(bfd2, F_GETFL) & O_ACCMODE, O_RDONLY);
        close(bfd2);
        /* d: not offered. */
        shm_open_call(d, "org.a.app.m", IPC_MODE_READ, &cfd, &err);
        ck_assert_int_eq(err, -EPERM);

        /* b passes on: wider refused, to c (b holds bus.send:org.c.app) allowed. */
        pass.handle = hb;
        pass.to = (char *)"org.c.app";
        pass.modes = IPC_MODE_RW;
        ck_assert_int_eq(call_msg(b, OP(IPC_PASS), &pass.base, NULL), -EPERM);
        pass.to = (char *)"org.d.app"; /* no bus.send:org.d.app */
        pass.modes = IPC_MODE_READ;
        ck_assert_int_eq(call_msg(b, OP(IPC_PASS), &pass.base, NULL), -EPERM);
        pass.to = (char *)"org.c.app";
        pass.handle = 999;
        ck_assert_int_eq(call_msg(b, OP(IPC_PASS), &pass.base, NULL), -ENOENT);
        pass.handle = hb;
        ck_assert_int_eq(call_msg(b, OP(IPC_PASS), &pass.base, &f), 0);
        t = ((Cella__V1__IpcPassReply *)f->msg)->token;
        frame_free(f);
        ck_assert_uint_eq(offered(c, "org.b.app", "org.a.app.m"), t);
        ck_assert_int_eq(accept_call(c, t, &cfd, &got), 0);
        ck_assert_uint_eq(got.modes, IPC_MODE_READ);
        ck_assert_int_eq(fcntl(cfd, F_GETFL) & O_ACCMODE, O_RDONLY);
        close(cfd);

        /* Offers replaced by the creator only; close with destroy by the creator only. */
        {
                Cella__V1__IpcOfferRequest oreq = CELLA__V1__IPC_OFFER_REQUEST__INIT;

                oreq.handle = hb;
                ck_assert_int_eq(call_msg(b, OP(IPC_OFFER), &oreq.base, NULL), -EPERM);
                oreq.handle = ha;
                ck_assert_int_eq(call_msg(a, OP(IPC_OFFER), &oreq.base, NULL), 0);
                /* No offer left: b cannot open again, its handle stays. */
                shm_open_call(b, "org.a.app.m", IPC_MODE_READ, &bfd2, &err);
                ck_assert_int_eq(err, -EPERM);
        }
        ck_assert_int_eq(ipc_close_call(b, hb, true), -EPERM);

        /* The list: b's handles and a's usage. */
        ck_assert_int_eq(call_msg(a, OP(IPC_LIST), &lreq.base, &f), 0);
        list = (Cella__V1__IpcListReply *)f->msg;
        ck_assert_uint_eq(list->n_handles, 1);
        ck_assert_uint_eq(list->handles[0]->handle, ha);
        ck_assert_str_eq(list->handles[0]->name, "org.a.app.m");
        ck_assert_uint_eq(list->handles[0]->size_bytes, 8192);
        ck_assert_uint_eq(list->usage->objects, 1);
        ck_assert_uint_eq(list->usage->shm_bytes, 8192);
        frame_free(f);

        /* The creator destroys: no new opens; b's mapping and handle stay. */
        ck_assert_int_eq(ipc_close_call(a, ha, true), 0);
        shm_open_call(a, "org.a.app.m", IPC_MODE_READ, &bfd2, &err);
        ck_assert_int_eq(err, -ENOENT);
        ck_assert_uint_eq(registry_objects(), 1);
        strcpy(pa, "still");
        ck_assert_str_eq(pb, "still");
        ck_assert_int_eq(ipc_close_call(b, hb, false), 0);
        ck_assert_int_eq(ipc_close_call(b, hb2, false), 0);
        ck_assert_uint_eq(registry_objects(), 1); /* c's handle holds it */
        ck_assert_int_eq(ipc_close_call(c, got.handle, false), 0);
        ck_assert_uint_eq(registry_objects(), 0);
        ck_assert_int_eq(ipc_close_call(b, hb, false), -ENOENT);
        munmap(pa, 8192);
        munmap(pb, 8192);
        close(afd);
        close(bfd);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("ipc");
        TCase *layer = tcase_create("layer"), *calls = tcase_create("calls");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(layer, setup, teardown);
        tcase_add_test(layer, test_name_check);
        tcase_add_test(layer, test_offers_check);
        tcase_add_test(layer, test_object_handles);
        tcase_add_test(layer, test_quotas);
        tcase_add_test(layer, test_open_offers);
        tcase_add_test(layer, test_revoke_closes);
        tcase_add_test(layer, test_pending);
        tcase_add_test(layer, test_detach);
        suite_add_tcase(s, layer);

        tcase_add_checked_fixture(calls, setup, teardown);
        tcase_add_test(calls, test_pipe_and_channel);
        tcase_add_test(calls, test_accept_needs_right);
        tcase_add_test(calls, test_pending_quota_call);
        tcase_add_test(calls, test_shm_create_checks);
        tcase_add_test(calls, test_shm_share);
        suite_add_tcase(s, calls);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
