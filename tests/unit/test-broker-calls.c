/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker's fs, timer and bus calls (src/broker/calls/{fs,timer,bus}.c), end to
 * end: a real Broker on a libuv loop, Grants and an AuditLog in a temporary state
 * dir, apps attached over socketpairs and driven with raw frames, as an app
 * without libcella would speak.
 */
#include <check.h>
#include <errno.h>
#include <sodium.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "audit/audit.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/fileio.h"
#include "broker/broker-internal.h"
#include "broker/broker.h"
#include "wire/channel.h"
#include "wire/wire.h"
#include "cella.pb-c.h"
#include "ipc/bus.h"
#include "policy/grants.h"
#include "policy/manifest.h"
#include "wire/bussig.h"

#define OWNER_UID 4242u /* owner of the user-file root: created files must get it */
#define OWNER_GID 4343u
#define WAIT_MS   5000
#define APPS_MAX  16

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
static char state_dir[] = "/tmp/cella-broker-calls-XXXXXX";
static char docs_dir[300], roots_docs[320], shared_dir[300], roots_shared[320];
static char *roots[] = {roots_docs, (char *)"procfs=/proc", roots_shared, NULL};
static Grants *grants;
static Bus *bus;
static AuditLog *audit;
static Broker *broker;
static TestApp *apps[APPS_MAX];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void write_file(const char *dir, const char *name, const char *text)
{
        char path[PATH_MAX];
        int fd;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        ck_assert_int_eq(fsync(fd), 0);
        close(fd);
}

static void setup(void)
{
        BrokerOptions o = {};

        umask(022);
        ck_assert_ptr_nonnull(mkdtemp(state_dir));
        snprintf(docs_dir, sizeof docs_dir, "%s/docs", state_dir);
        ck_assert_int_eq(mkdir(docs_dir, 0755), 0);
        ck_assert_int_eq(chown(docs_dir, OWNER_UID, OWNER_GID), 0);
        snprintf(roots_docs, sizeof roots_docs, "documents=%s", docs_dir);
        write_file(docs_dir, "hello.txt", "hello");
        /* A root owned by root, as a folder in /srv made by root would be. */
        snprintf(shared_dir, sizeof shared_dir, "%s/shared", state_dir);
        ck_assert_int_eq(mkdir(shared_dir, 0755), 0);
        snprintf(roots_shared, sizeof roots_shared, "shared=%s", shared_dir);

        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(grants_open(state_dir, &grants), 0);
        ck_assert_int_eq(bus_new(&bus), 0);
        ck_assert_int_eq(audit_open(state_dir, NULL, &audit), 0);
        o.loop = &loop;
        o.grants = grants;
        o.audit = audit;
        o.bus = bus;
        o.state_dir = state_dir;
        o.roots = roots;
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
        /* These tests are about the bus, not about who may reach whom (test-grants.c):
         * the user grants each bus right that reaches beyond the app's own namespace. */
        STRV_FOREACH (p, a->manifest->permissions) {
                CapabilityLevel level;

                if (strncmp(*p, "bus.", 4) == 0 && grants_level(grants, id, *p, &level) == 0 &&
                    level == CAPABILITY_DANGEROUS)
                        ck_assert_int_eq(
                                grants_grant(grants, id, *p, false, GRANT_BY_USER, grants_now_ms()),
                                0);
        }
        snprintf(a->data_dir, sizeof a->data_dir, "%s/%s.data", state_dir, id);
        ck_assert_int_eq(mkdir(a->data_dir, 0700), 0);

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

/*
 * The wall clock in ms less the time this thread spent runnable but waiting for a
 * CPU (run_delay, the second field of /proc/thread-self/schedstat): what a bound
 * on "not held up" compares, so a loaded machine does not fail it while a call
 * that blocks (sleeps, waits on a lease or a FIFO) still counts in full.
 */
static int64_t now_own_ms(void)
{
        _cleanup_free_ char *text = NULL;
        unsigned long long cpu_ns, delay_ns;

        ck_assert_int_eq(read_file_at(AT_FDCWD, "/proc/thread-self/schedstat", 256, &text, NULL),
                         0);
        ck_assert_int_eq(sscanf(text, "%llu %llu", &cpu_ns, &delay_ns), 2);
        return now_ms() - (int64_t)(delay_ns / 1000000u);
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

/* The reply to request id: 0 and *ret (frame_free), or the error reply's -errno. */
static int wait_reply(TestApp *a, uint64_t id, Frame **ret)
{
        Frame *f = take(a, id, 0, WAIT_MS);
        int r;

        ck_assert_msg(f != NULL, "%s: no reply to request %llu", a->id, (unsigned long long)id);
        r = f->err;
        if (r == 0 && ret)
                *ret = f;
        else
                frame_free(f);
        return r;
}

static int call(TestApp *a, uint16_t opcode, const ProtobufCMessage *req, Frame **ret)
{
        return wait_reply(a, send_request(a, opcode, req), ret);
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

/* ---- fs ---------------------------------------------------------------------------- */

static int fs_open(TestApp *a, const char *root, const char *path, uint32_t flags, unsigned mode,
                   int *ret_fd, Cella__V1__FsOpenReply *ret_reply)
{
        Cella__V1__FsOpenRequest req = CELLA__V1__FS_OPEN_REQUEST__INIT;
        Frame *f = NULL;
        int r;

        req.root = (char *)root;
        req.path = (char *)path;
        req.flags = flags;
        req.mode = mode;
        r = call(a, CELLA__V1__OPCODE__OPCODE_FS_OPEN, &req.base, &f);
        if (r < 0)
                return r;
        ck_assert_int_ge(f->fd, 0);
        if (ret_reply)
                *ret_reply = *(Cella__V1__FsOpenReply *)(void *)f->msg;
        if (ret_fd)
                *ret_fd = TAKE_FD(f->fd);
        frame_free(f);
        return 0;
}

#define R                   CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_READ
#define W                   CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_WRITE
#define CR                  CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_CREATE
#define EX                  CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_EXCLUSIVE
#define TR                  CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_TRUNCATE
#define AP                  CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_APPEND
#define FS_RENAME_NOREPLACE CELLA__V1__FS_RENAME_FLAG__FS_RENAME_FLAG_NOREPLACE
#define FS_RENAME_EXCHANGE  CELLA__V1__FS_RENAME_FLAG__FS_RENAME_FLAG_EXCHANGE
#define DI                  CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_DIRECTORY

static const char *const docs_rw[] = {"fs.read:documents", "fs.write:documents", NULL};

START_TEST(test_fs_open_read_write)
{
        TestApp *a =
                app_new("org.t.files", "\"fs.read:documents\",\"fs.write:documents\"", docs_rw);
        Cella__V1__FsOpenReply rep;
        char buf[16] = {}, p[400];
        struct stat st;
        int fd;

        /* Read: the fd reads the file, and is read-only. */
        ck_assert_int_eq(fs_open(a, "documents", "hello.txt", R, 0, &fd, &rep), 0);
        ck_assert_uint_eq(rep.size_bytes, 5);
        ck_assert(!rep.is_directory);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK | O_PATH), O_RDONLY);
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_int_eq(read(fd, buf, sizeof buf), 5);
        ck_assert_str_eq(buf, "hello");
        ck_assert_int_eq(write(fd, "x", 1), -1);
        close(fd);

        /* Create: owned by the root's owner, execute bits dropped, write-only fd. */
        ck_assert_int_eq(fs_open(a, "documents", "new.txt", W | CR, 0755, &fd, &rep), 0);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK | O_PATH), O_WRONLY);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq(st.st_uid, OWNER_UID);
        ck_assert_uint_eq(st.st_gid, OWNER_GID);
        ck_assert_uint_eq(st.st_mode & 07777, 0644);
        ck_assert_int_eq(write(fd, "abc", 3), 3);
        ck_assert_int_eq(read(fd, buf, 1), -1);
        close(fd);
        /* CREATE of an existing file opens it (not made here: its owner stays). */
        write_file(docs_dir, "theirs.txt", "12345");
        snprintf(p, sizeof p, "%s/theirs.txt", docs_dir);
        ck_assert_int_eq(chown(p, OWNER_UID + 1, OWNER_GID), 0);
        ck_assert_int_eq(chmod(p, 0666), 0);
        ck_assert_int_eq(fs_open(a, "documents", "theirs.txt", R | W | CR, 0600, &fd, &rep), 0);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq(st.st_uid, OWNER_UID + 1);
        ck_assert_uint_eq(rep.size_bytes, 5);
        close(fd);
        ck_assert_int_eq(fs_open(a, "documents", "new.txt", W | CR | EX, 0600, NULL, NULL),
                         -EEXIST);
        /* Append, truncate. */
        ck_assert_int_eq(fs_open(a, "documents", "new.txt", W | AP, 0, &fd, NULL), 0);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_APPEND, O_APPEND);
        close(fd);
        ck_assert_int_eq(fs_open(a, "documents", "new.txt", W | TR, 0, &fd, &rep), 0);
        ck_assert_uint_eq(rep.size_bytes, 0);
        close(fd);
        /* A directory is never passed: its fd would reach its parents with "..". */
        snprintf(p, sizeof p, "%s/sub", docs_dir);
        ck_assert_int_eq(mkdir(p, 0755), 0);
        ck_assert_int_eq(fs_open(a, "documents", "sub", R, 0, NULL, NULL), -EISDIR);
        ck_assert_int_eq(fs_open(a, "documents", ".", R, 0, NULL, NULL), -EISDIR);
        ck_assert_int_eq(fs_open(a, "documents", "sub/..", R, 0, NULL, NULL), -EISDIR);
        ck_assert_int_eq(fs_open(a, "documents", "sub", R | DI, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(fs_open(a, "documents", "sub", W, 0, NULL, NULL), -EISDIR);
        ck_assert_int_eq(fs_open(a, "documents", "nope.txt", R, 0, NULL, NULL), -ENOENT);
        /* A symlink that stays inside the root is followed. */
        snprintf(p, sizeof p, "%s/sub/link", docs_dir);
        ck_assert_int_eq(symlink("../hello.txt", p), 0);
        ck_assert_int_eq(fs_open(a, "documents", "sub/link", R, 0, &fd, &rep), 0);
        ck_assert_uint_eq(rep.size_bytes, 5);
        close(fd);
}
END_TEST

START_TEST(test_fs_open_refused)
{
        static const char *const ro[] = {"fs.read:documents", NULL};
        TestApp *r = app_new("org.t.reader", "\"fs.read:documents\",\"fs.write:documents\"", ro),
                *none = app_new("org.t.none", "\"fs.read:documents\"", NULL);
        char buf[16] = {}, p[400];
        int fd;

        /* Read-only grant: every kind of write is refused, the file is unchanged. */
        ck_assert_int_eq(fs_open(r, "documents", "hello.txt", W, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(r, "documents", "hello.txt", R | W, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(r, "documents", "hello.txt", R | TR, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(r, "documents", "x.txt", R | CR, 0644, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(r, "documents", "hello.txt", R, 0, &fd, NULL), 0);
        ck_assert_int_eq(read(fd, buf, sizeof buf), 5);
        close(fd);
        snprintf(p, sizeof p, "%s/x.txt", docs_dir);
        ck_assert_int_eq(access(p, F_OK), -1);
        /* Requested, not granted. */
        ck_assert_int_eq(fs_open(none, "documents", "hello.txt", R, 0, NULL, NULL), -EACCES);
        /* Not requested; not a root name at all. */
        ck_assert_int_eq(fs_open(r, "media", "a", R, 0, NULL, NULL), -EPERM);
        ck_assert_int_eq(fs_open(r, "Bad Root", "a", R, 0, NULL, NULL), -EPERM);
        ck_assert_int_eq(fs_open(r, "a23456789012345678901234567890123", "a", R, 0, NULL, NULL),
                         -EPERM);
        /* Bad fields. */
        ck_assert_int_eq(fs_open(r, "", "a", R, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(fs_open(r, "documents", "", R, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(fs_open(r, "documents", "a", 0, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(fs_open(r, "documents", "a", R | 0x80, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(fs_open(r, "documents", "a", R | EX, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(fs_open(r, "documents", "a", W | DI, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(fs_open(r, "documents", "a", R | DI, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(fs_open(r, "documents", "a", W | CR, 01000, NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_fs_open_path_bounds)
{
        TestApp *a =
                app_new("org.t.files", "\"fs.read:documents\",\"fs.write:documents\"", docs_rw);
        _cleanup_free_ char *path = malloc(4097);

        /* 4095 bytes: accepted, and the kernel's own limit answers (name too long). */
        memset(path, 'a', 4095);
        path[4095] = 0;
        ck_assert_int_eq(fs_open(a, "documents", path, R, 0, NULL, NULL), -ENAMETOOLONG);
        /* 4096: the proto's bound. */
        path[4095] = 'a';
        path[4096] = 0;
        ck_assert_int_eq(fs_open(a, "documents", path, R, 0, NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_fs_open_escapes)
{
        static const char *const g[] = {"fs.read:documents", "fs.read:procfs", NULL};
        TestApp *a = app_new("org.t.files", "\"fs.read:documents\",\"fs.read:procfs\"", g);
        char p[400];
        int64_t t0;

        snprintf(p, sizeof p, "%s/abs", docs_dir);
        ck_assert_int_eq(symlink("/etc/passwd", p), 0);
        snprintf(p, sizeof p, "%s/up", docs_dir);
        ck_assert_int_eq(symlink("../..", p), 0);
        snprintf(p, sizeof p, "%s/procroot", docs_dir);
        ck_assert_int_eq(symlink("/proc/self/root", p), 0);
        snprintf(p, sizeof p, "%s/fifo", docs_dir);
        ck_assert_int_eq(mkfifo(p, 0644), 0);

        ck_assert_int_eq(fs_open(a, "documents", "../docs/hello.txt", R, 0, NULL, NULL), -EXDEV);
        ck_assert_int_eq(fs_open(a, "documents", "/etc/passwd", R, 0, NULL, NULL), -EXDEV);
        ck_assert_int_eq(fs_open(a, "documents", "abs", R, 0, NULL, NULL), -EXDEV);
        ck_assert_int_eq(fs_open(a, "documents", "up/etc/passwd", R, 0, NULL, NULL), -EXDEV);
        ck_assert_int_eq(fs_open(a, "documents", "procroot/etc/passwd", R, 0, NULL, NULL), -EXDEV);
        /* Magic links, reached beneath a root that holds them (/proc). */
        ck_assert_int_eq(fs_open(a, "procfs", "self/root/etc/passwd", R, 0, NULL, NULL), -ELOOP);
        ck_assert_int_eq(fs_open(a, "procfs", "self/cwd", R, 0, NULL, NULL), -ELOOP);
        ck_assert_int_eq(fs_open(a, "procfs", "thread-self/fd/0", R, 0, NULL, NULL), -ELOOP);
        /* A FIFO is not opened for the app, and does not stall the broker. */
        t0 = now_own_ms();
        ck_assert_int_eq(fs_open(a, "documents", "fifo", R, 0, NULL, NULL), -ENXIO);
        ck_assert_int_lt(now_own_ms() - t0, 1000);
}
END_TEST

START_TEST(test_fs_open_default_root)
{
        static const char *const g[] = {"fs.write:scratch", NULL};
        TestApp *a = app_new("org.t.files", "\"fs.write:scratch\"", g);
        char p[400];
        struct stat st;
        int fd;

        ck_assert_int_eq(fs_open(a, "scratch", "n.txt", W | CR, 0600, &fd, NULL), 0);
        close(fd);
        snprintf(p, sizeof p, "%s/roots/scratch", state_dir);
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0700);
        /* Made by a root kernel: the overflow user owns it, and acts for it. */
        ck_assert_uint_eq(st.st_uid, 65534);
        strcat(p, "/n.txt");
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_uint_eq(st.st_uid, 65534);
}
END_TEST

START_TEST(test_fs_usage)
{
        TestApp *a = app_new("org.t.store", "\"storage\"", NULL),
                *no = app_new("org.t.nostore", "\"timer\"", NULL);
        Cella__V1__FsUsageRequest req = CELLA__V1__FS_USAGE_REQUEST__INIT;
        const Cella__V1__FsUsageReply *u;
        _cleanup_free_ char *big = malloc(200000);
        struct stat st;
        uint64_t expect = 0;
        char p[400];
        Frame *f;
        int fd;

        /* A file, a subdir with a file, a symlink out (not followed). */
        snprintf(p, sizeof p, "%s/big", a->data_dir);
        fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        memset(big, 'x', 200000);
        ck_assert_int_eq(write(fd, big, 200000), 200000);
        fsync(fd);
        close(fd);
        snprintf(p, sizeof p, "%s/d", a->data_dir);
        ck_assert_int_eq(mkdir(p, 0700), 0);
        write_file(p, "small", "12345");
        snprintf(p, sizeof p, "%s/usr", a->data_dir);
        ck_assert_int_eq(symlink("/usr", p), 0);
        /* What du would say. */
        static const char *const names[] = {"", "/big", "/d", "/d/small", "/usr"};
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                snprintf(p, sizeof p, "%s%s", a->data_dir, names[i]);
                ck_assert_int_eq(lstat(p, &st), 0);
                expect += (uint64_t)st.st_blocks * 512;
        }
        ck_assert_uint_ge(expect, 200000);

        ck_assert_int_eq(call(a, CELLA__V1__OPCODE__OPCODE_FS_USAGE, &req.base, &f), 0);
        u = (const void *)f->msg;
        ck_assert_uint_eq(u->data_used_bytes, expect);
        ck_assert_uint_eq(u->data_quota_bytes, 1024 * 1024);
        ck_assert_uint_eq(u->tmp_used_bytes, 0); /* no running init in this test */
        ck_assert_uint_eq(u->tmp_quota_bytes, 2 * 1024 * 1024);
        frame_free(f);
        ck_assert_int_eq(call(no, CELLA__V1__OPCODE__OPCODE_FS_USAGE, &req.base, NULL), -EPERM);
}
END_TEST

/* Counts fs.usage records of the audit log: all of them, and those of a call that
 * started a walk (walk_cpu_us). */
typedef struct UsageRecords {
        unsigned calls, walks;
} UsageRecords;

static int usage_records_cb(const json_t *rec, const char *line, size_t len, void *userdata)
{
        UsageRecords *u = userdata;
        const char *op = json_string_value(json_object_get(rec, "op"));
        json_t *n = json_object_get(rec, "count");

        if (!op || strcmp(op, "fs.usage") != 0)
                return 0;
        /* A summary of coalesced records counts what it stands for. */
        u->calls += json_is_integer(n) ? (unsigned)json_integer_value(n) : 1;
        if (json_object_get(rec, "walk_cpu_us"))
                u->walks++;
        return 0;
}

static UsageRecords usage_records(void)
{
        UsageRecords u = {};
        AuditVerifyReport rep;

        broker_audit_flush(broker);
        ck_assert_int_eq(audit_flush(audit), 0);
        ck_assert_int_eq(audit_read(state_dir, NULL, usage_records_cb, &u, &rep), 0);
        return u;
}

/*
 * fs.usage walks /data on the threadpool, one walk per app at a time: calls made
 * while it runs wait for its figure, the figure is answered from the cache after,
 * a waiting call can be cancelled, and an app that goes away mid-walk leaves
 * nothing behind (teardown's uv_loop_close and ASan check).
 */
START_TEST(test_fs_usage_one_walk)
{
        TestApp *a = app_new("org.t.store", "\"storage\"", NULL),
                *b = app_new("org.t.other", "\"timer\"", NULL);
        Cella__V1__FsUsageRequest req = CELLA__V1__FS_USAGE_REQUEST__INIT;
        Cella__V1__SystemTimeRequest tq = CELLA__V1__SYSTEM_TIME_REQUEST__INIT;
        uint64_t ids[20], cancelled, figure = 0;
        UsageRecords u;
        char p[32];
        Frame *f;

        for (unsigned i = 0; i < 1000; i++) {
                snprintf(p, sizeof p, "f%u", i);
                write_file(a->data_dir, p, "x");
        }
        /* 20 calls in one go, and one cancelled at once: one walk answers them. */
        for (unsigned i = 0; i < ELEMENTSOF(ids); i++)
                ids[i] = send_request(a, CELLA__V1__OPCODE__OPCODE_FS_USAGE, &req.base);
        cancelled = send_request(a, CELLA__V1__OPCODE__OPCODE_FS_USAGE, &req.base);
        ck_assert_int_eq(channel_send(a->fd,
                                      &(ChannelFrame){.opcode = CELLA__V1__OPCODE__OPCODE_FS_USAGE,
                                                      .flags = CHANNEL_FLAG_CANCEL,
                                                      .request_id = cancelled},
                                      NULL, 0, 0),
                         0);
        /* Another app is answered meanwhile. */
        ck_assert_int_eq(call(b, CELLA__V1__OPCODE__OPCODE_SYSTEM_TIME, &tq.base, NULL), 0);
        for (unsigned i = 0; i < ELEMENTSOF(ids); i++) {
                const Cella__V1__FsUsageReply *r;

                ck_assert_int_eq(wait_reply(a, ids[i], &f), 0);
                r = (const void *)f->msg;
                ck_assert_uint_ge(r->data_used_bytes, 1000u * 512);
                if (i == 0)
                        figure = r->data_used_bytes;
                ck_assert_uint_eq(r->data_used_bytes, figure);
                frame_free(f);
        }
        ck_assert_ptr_null(take(a, cancelled, 0, 50));
        u = usage_records();
        ck_assert_uint_eq(u.walks, 1);
        /* Answered from the cache: no second walk. */
        ck_assert_int_eq(call(a, CELLA__V1__OPCODE__OPCODE_FS_USAGE, &req.base, &f), 0);
        ck_assert_uint_eq(((const Cella__V1__FsUsageReply *)f->msg)->data_used_bytes, figure);
        frame_free(f);
        u = usage_records();
        ck_assert_uint_eq(u.walks, 1);
        /* 20 answered, 1 cancelled (recorded as such), 1 from the cache. */
        ck_assert_uint_eq(u.calls, ELEMENTSOF(ids) + 2);

        /* Another app's walk, and the app goes away while it runs. */
        TestApp *c = app_new("org.t.gone", "\"storage\"", NULL);
        for (unsigned i = 0; i < 1000; i++) {
                snprintf(p, sizeof p, "g%u", i);
                write_file(c->data_dir, p, "y");
        }
        (void)send_request(c, CELLA__V1__OPCODE__OPCODE_FS_USAGE, &req.base);
        uv_run(&loop, UV_RUN_NOWAIT); /* read: the walk is queued */
        app_free(c);
}
END_TEST

/* ---- timer ------------------------------------------------------------------------- */

/* ---- keystore (docs/ipc.md) ---------------------------------------------- */

static int ks_create(TestApp *a, const char *name, Cella__V1__KeystoreKind kind, uint8_t pub[32])
{
        Cella__V1__KeystoreCreateRequest req = CELLA__V1__KEYSTORE_CREATE_REQUEST__INIT;
        Frame *f = NULL;
        int r;

        req.name = (char *)name;
        req.kind = kind;
        r = call(a, CELLA__V1__OPCODE__OPCODE_KEYSTORE_CREATE, &req.base, &f);
        if (r < 0)
                return r;
        if (pub) {
                const Cella__V1__KeystoreCreateReply *m = (const void *)f->msg;

                ck_assert_uint_eq(m->public_key.len, 32);
                memcpy(pub, m->public_key.data, 32);
        }
        frame_free(f);
        return 0;
}

static uint64_t ks_sign_send(TestApp *a, const char *name, const void *data, size_t len)
{
        Cella__V1__KeystoreSignRequest req = CELLA__V1__KEYSTORE_SIGN_REQUEST__INIT;

        req.name = (char *)name;
        req.data = (ProtobufCBinaryData){.data = (uint8_t *)data, .len = len};
        return send_request(a, CELLA__V1__OPCODE__OPCODE_KEYSTORE_SIGN, &req.base);
}

static int ks_sign(TestApp *a, const char *name, const void *data, size_t len, uint8_t sig[64])
{
        Frame *f = NULL;
        int r = wait_reply(a, ks_sign_send(a, name, data, len), &f);

        if (r < 0)
                return r;
        ck_assert_uint_eq(((Cella__V1__KeystoreSignReply *)(void *)f->msg)->signature.len, 64);
        memcpy(sig, ((Cella__V1__KeystoreSignReply *)(void *)f->msg)->signature.data, 64);
        frame_free(f);
        return 0;
}

/* Small data is signed on the loop, large data on the threadpool: both verify, both
 * refuse another app's key name the same way, and the keystore is opened only by
 * the first keystore call. */
START_TEST(test_keystore_loop_and_worker)
{
        TestApp *a = app_new("org.t.ks", "\"keystore\"", NULL),
                *b = app_new("org.t.ks2", "\"keystore\"", NULL);
        static uint8_t big[60000];
        uint8_t pub[32], sig[64];
        char path[400];

        snprintf(path, sizeof path, "%s/keystore.key", state_dir);
        ck_assert_int_eq(access(path, F_OK), -1);
        ck_assert_int_eq(ks_create(a, "s", CELLA__V1__KEYSTORE_KIND__KEYSTORE_KIND_ED25519, pub),
                         0);
        ck_assert_int_eq(access(path, F_OK), 0);
        memset(big, 'b', sizeof big);
        ck_assert_int_eq(ks_sign(a, "s", "small", 5, sig), 0);
        ck_assert_int_eq(crypto_sign_verify_detached(sig, (const uint8_t *)"small", 5, pub), 0);
        ck_assert_int_eq(ks_sign(a, "s", big, sizeof big, sig), 0);
        ck_assert_int_eq(crypto_sign_verify_detached(sig, big, sizeof big, pub), 0);
        /* verify on the workers too: a good and a bad signature of 60000 bytes */
        {
                Cella__V1__KeystoreVerifyRequest req = CELLA__V1__KEYSTORE_VERIFY_REQUEST__INIT;
                Frame *f = NULL;

                req.public_key = (ProtobufCBinaryData){.data = pub, .len = 32};
                req.data = (ProtobufCBinaryData){.data = big, .len = sizeof big};
                req.signature = (ProtobufCBinaryData){.data = sig, .len = 64};
                ck_assert_int_eq(call(b, CELLA__V1__OPCODE__OPCODE_KEYSTORE_VERIFY, &req.base, &f),
                                 0);
                ck_assert(((Cella__V1__KeystoreVerifyReply *)(void *)f->msg)->valid);
                frame_free(f);
                big[100] ^= 1;
                ck_assert_int_eq(call(b, CELLA__V1__OPCODE__OPCODE_KEYSTORE_VERIFY, &req.base, &f),
                                 0);
                ck_assert(!((Cella__V1__KeystoreVerifyReply *)(void *)f->msg)->valid);
                frame_free(f);
                big[100] ^= 1;
        }
        ck_assert_int_eq(ks_sign(b, "s", "small", 5, sig), -ENOENT);
        ck_assert_int_eq(ks_sign(b, "s", big, sizeof big, sig), -ENOENT);
        ck_assert_int_eq(ks_sign(a, "nope", big, sizeof big, sig), -ENOENT);
}
END_TEST

/* An app that goes while its large operations wait on workers: nothing leaks (ASan's
 * leak check), nothing is answered to a freed call, the loop closes (teardown). */
START_TEST(test_keystore_worker_app_gone)
{
        TestApp *a = app_new("org.t.ksgone", "\"keystore\"", NULL);
        static uint8_t big[60000];
        BrokerAppStats st;
        uint8_t sig[64];

        ck_assert_int_eq(ks_create(a, "s", CELLA__V1__KEYSTORE_KIND__KEYSTORE_KIND_ED25519, NULL),
                         0);
        ck_assert_int_eq(ks_sign(a, "s", "x", 1, sig), 0); /* the keystore is open */
        /* One at a time, each read by the broker (which queues a worker for it) before
         * the next: the socket holds only a few frames of this size. Then the app goes
         * with some still on the workers. */
        bool waiting = false;

        for (int i = 0; i < 64 && !waiting; i++) {
                (void)ks_sign_send(a, "s", big, sizeof big);
                uv_run(&loop, UV_RUN_NOWAIT);
                broker_app_stats(a->app, &st);
                waiting = st.outstanding > 0; /* one waits on a worker now */
        }
        ck_assert_msg(waiting, "no sign call was ever seen waiting on a worker");
        app_free(a);
}
END_TEST

static int tmr_create(TestApp *a, uint64_t initial_ms, uint64_t interval_ms, uint64_t cookie,
                      uint64_t *ret_id)
{
        Cella__V1__TimerCreateRequest req = CELLA__V1__TIMER_CREATE_REQUEST__INIT;
        Frame *f = NULL;
        int r;

        req.initial_ms = initial_ms;
        req.interval_ms = interval_ms;
        req.cookie = cookie;
        r = call(a, CELLA__V1__OPCODE__OPCODE_TIMER_CREATE, &req.base, &f);
        if (r < 0)
                return r;
        *ret_id = ((Cella__V1__TimerCreateReply *)(void *)f->msg)->timer_id;
        frame_free(f);
        return 0;
}

static int tmr_cancel(TestApp *a, uint64_t id)
{
        Cella__V1__TimerCancelRequest req = CELLA__V1__TIMER_CANCEL_REQUEST__INIT;

        req.timer_id = id;
        return call(a, CELLA__V1__OPCODE__OPCODE_TIMER_CANCEL, &req.base, NULL);
}

static Cella__V1__TimerFiredEvent *fired(Frame *f)
{
        ck_assert_ptr_nonnull(f);
        return (void *)f->msg;
}

START_TEST(test_timer_one_shot_and_periodic)
{
        TestApp *a = app_new("org.t.timer", "\"timer\"", NULL);
        uint64_t once = 0, every = 0, total = 0;
        Cella__V1__TimerFiredEvent *ev;
        int64_t t0 = now_ms();
        Frame *f;

        ck_assert_int_eq(tmr_create(a, 20, 0, 7, &once), 0);
        ck_assert_uint_gt(once, 0);
        f = take(a, 0, CELLA__V1__OPCODE__OPCODE_EVENT_TIMER_FIRED, WAIT_MS);
        ev = fired(f);
        ck_assert_int_ge(now_ms() - t0, 20);
        ck_assert_uint_eq(ev->timer_id, once);
        ck_assert_uint_eq(ev->cookie, 7);
        ck_assert_uint_eq(ev->expirations, 1);
        ck_assert_int_gt(ev->monotonic_ns, 0);
        frame_free(f);
        /* A one-shot that fired is gone. */
        ck_assert_int_eq(tmr_cancel(a, once), -ENOENT);

        ck_assert_int_eq(tmr_create(a, 5, 5, 9, &every), 0);
        ck_assert_uint_ne(every, once); /* ids are not reused */
        for (int i = 0; i < 3; i++) {
                f = take(a, 0, CELLA__V1__OPCODE__OPCODE_EVENT_TIMER_FIRED, WAIT_MS);
                ev = fired(f);
                ck_assert_uint_eq(ev->timer_id, every);
                ck_assert_uint_eq(ev->cookie, 9);
                ck_assert_uint_ge(ev->expirations, 1);
                frame_free(f);
        }
        /* A loop that falls behind: the firings it missed are counted, not lost. */
        usleep(100 * 1000);
        for (int64_t end = now_ms() + 50; now_ms() < end;) {
                f = take(a, 0, CELLA__V1__OPCODE__OPCODE_EVENT_TIMER_FIRED, 10);
                if (f) {
                        total += fired(f)->expirations;
                        frame_free(f);
                }
        }
        ck_assert_uint_ge(total, 100 / 5);
        ck_assert_int_eq(tmr_cancel(a, every), 0);
        drain(a, 20);
        ck_assert_ptr_null(take(a, 0, CELLA__V1__OPCODE__OPCODE_EVENT_TIMER_FIRED, 30));
        ck_assert_int_eq(tmr_cancel(a, every), -ENOENT);
        ck_assert_int_eq(tmr_cancel(a, 12345), -ENOENT);
        ck_assert_int_eq(tmr_create(a, (1ull << 40) + 1, 0, 0, &once), -EINVAL);
        ck_assert_int_eq(tmr_create(a, 0, (1ull << 40) + 1, 0, &once), -EINVAL);
}
END_TEST

START_TEST(test_timer_cap_and_detach)
{
        TestApp *a = app_new("org.t.timer", "\"timer\"", NULL),
                *no = app_new("org.t.notimer", "\"storage\"", NULL);
        uint64_t id;

        for (unsigned i = 0; i < BROKER_TIMERS_MAX; i++)
                ck_assert_int_eq(tmr_create(a, 60000, 60000, i, &id), 0);
        ck_assert_int_eq(tmr_create(a, 60000, 0, 0, &id), -EBUSY);
        ck_assert_int_eq(tmr_cancel(a, id), 0);
        ck_assert_int_eq(tmr_create(a, 60000, 0, 0, &id), 0);
        ck_assert_int_eq(tmr_create(no, 1, 0, 0, &id), -EPERM);
        /* Detaching with 64 live timers frees them (teardown's uv_loop_close checks). */
        app_free(a);
}
END_TEST

START_TEST(test_timer_revoke_closes)
{
        TestApp *a = app_new("org.t.timer", "\"timer\"", NULL);
        uint64_t id;

        ck_assert_int_eq(tmr_create(a, 5, 5, 1, &id), 0);
        frame_free(take(a, 0, CELLA__V1__OPCODE__OPCODE_EVENT_TIMER_FIRED, WAIT_MS));
        drain(a, 0);
        ck_assert_int_ge(grants_revoke(grants, a->id, "timer", NULL), 1);
        ck_assert_int_ge(broker_grants_changed(broker, a->id), 1);
        drain(a, 10);
        ck_assert_ptr_null(take(a, 0, CELLA__V1__OPCODE__OPCODE_EVENT_TIMER_FIRED, 50));
        ck_assert_int_eq(tmr_create(a, 5, 5, 1, &id), -EACCES);
}
END_TEST

/* ---- net ----------------------------------------------------------------------------- */

/* A listener on this process's 127.0.0.1 (no packet leaves the machine): its port. */
static int net_listener(uint16_t *ret_port)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t l = sizeof sa;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(listen(fd, 8), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

static int net_connect(TestApp *a, const char *host, uint16_t port, Frame **ret)
{
        Cella__V1__NetConnectRequest req = CELLA__V1__NET_CONNECT_REQUEST__INIT;
        Frame *f = take(a,
                        send_request(a, CELLA__V1__OPCODE__OPCODE_NET_CONNECT,
                                     (req.host = (char *)host, req.port = port, &req.base)),
                        0, WAIT_MS);
        int r;

        ck_assert_ptr_nonnull(f);
        r = f->err;
        if (r == 0 && ret)
                *ret = f;
        else {
                if (ret)
                        *ret = f; /* the error's message is read by the caller */
                else
                        frame_free(f);
        }
        return r;
}

/* Blocks (pumping the loop) until fd is readable or WAIT_MS pass. */
static bool net_wait_readable(int fd)
{
        int64_t end = now_ms() + WAIT_MS;

        while (now_ms() < end) {
                struct pollfd p = {.fd = fd, .events = POLLIN};

                if (poll(&p, 1, 0) > 0)
                        return true;
                pump();
        }
        return false;
}

START_TEST(test_net_connect_call)
{
        uint16_t port;
        int lfd = net_listener(&port), srv;
        char right[64], buf[64];
        const char *grant[] = {right, NULL};
        Frame *f = NULL;
        BrokerAppStats st;

        snprintf(right, sizeof right, "net.connect:127.0.0.1:%u", port);
        char perms[128];
        snprintf(perms, sizeof perms, "\"%s\"", right);
        TestApp *a = app_new("org.t.net", perms, grant);

        /* Another spelling of the same address asks the same right. */
        ck_assert_int_eq(net_connect(a, "127.1", port, &f), 0);
        ck_assert_int_ge(f->fd, 0);
        const Cella__V1__NetConnectReply *rep = (const void *)f->msg;
        ck_assert_str_eq(rep->address, "127.0.0.1");
        ck_assert_str_eq(rep->right, right);
        ck_assert_uint_eq(rep->connection_id, 1);
        srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(srv, 0);
        ck_assert_int_eq(write(f->fd, "ping", 4), 4);
        ck_assert(net_wait_readable(srv));
        ck_assert_int_eq(read(srv, buf, sizeof buf), 4);
        ck_assert_int_eq(write(srv, "pong!", 5), 5);
        ck_assert(net_wait_readable(f->fd));
        ck_assert_int_eq(read(f->fd, buf, sizeof buf), 5);

        /* The app's end is a Unix socket, never the kernel's TCP socket. */
        int domain = 0;
        socklen_t l = sizeof domain;
        ck_assert_int_eq(getsockopt(f->fd, SOL_SOCKET, SO_DOMAIN, &domain, &l), 0);
        ck_assert_int_eq(domain, AF_UNIX);

        /* Revoked: cut at once, both ways. */
        ck_assert_int_ge(grants_revoke(grants, a->id, right, NULL), 1);
        ck_assert_int_ge(broker_grants_changed(broker, a->id), 1);
        ck_assert(net_wait_readable(f->fd));
        ck_assert_int_eq(read(f->fd, buf, sizeof buf), 0);
        ck_assert(net_wait_readable(srv));
        ck_assert_int_le(read(srv, buf, sizeof buf), 0);
        close(srv);
        frame_free(f);
        f = NULL;
        ck_assert_int_eq(net_connect(a, "127.0.0.1", port, &f), -EACCES);
        frame_free(f);

        /* Refusals by class name it; bad spellings are EINVAL. */
        ck_assert_int_eq(net_connect(a, "10.0.0.1", 80, &f), -EPERM);
        ck_assert_msg(strstr(f->err_message, "private address (RFC 1918)"), "%s", f->err_message);
        frame_free(f);
        ck_assert_int_eq(net_connect(a, "[::ffff:169.254.169.254]", 80, &f), -EPERM);
        ck_assert_msg(strstr(f->err_message, "IPv4-mapped form of 169.254.169.254"), "%s",
                      f->err_message);
        frame_free(f);
        ck_assert_int_eq(net_connect(a, "1.2.3.4.5", 80, NULL), -EINVAL);
        ck_assert_int_eq(net_connect(a, "a b", 80, NULL), -EINVAL);
        ck_assert_int_eq(net_connect(a, "127.0.0.1", 0, NULL), -EINVAL);

        /* Counted once the relay is done with it. */
        for (int64_t end = now_ms() + WAIT_MS; now_ms() < end;) {
                broker_app_stats(a->app, &st);
                if (st.net_bytes_out == 4)
                        break;
                pump();
        }
        ck_assert_uint_eq(st.net_connections, 1);
        ck_assert_uint_eq(st.net_bytes_out, 4);
        ck_assert_uint_eq(st.net_bytes_in, 5);
        ck_assert_uint_ge(st.net_refused, 3);
        close(lfd);
}
END_TEST

typedef struct NetDone {
        unsigned calls;
        int error;
        char why[512], address[64];
} NetDone;

static void net_done(void *userdata, int error, const char *why, const char *address)
{
        NetDone *d = userdata;

        d->calls++;
        d->error = error;
        snprintf(d->why, sizeof d->why, "%s", why ? why : "");
        snprintf(d->address, sizeof d->address, "%s", address ? address : "");
}

static void net_wait_done(NetDone *d)
{
        for (int64_t end = now_ms() + WAIT_MS; d->calls == 0 && now_ms() < end;)
                pump();
        ck_assert_uint_eq(d->calls, 1);
}

START_TEST(test_broker_net_connect)
{
        uint16_t port;
        int lfd = net_listener(&port), sp[2], srv;
        char right[64], perms[80], buf[128];
        const char *grant[] = {right, NULL};
        static const char head[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        NetDone d = {0};

        snprintf(right, sizeof right, "net.connect:127.0.0.1:%u", port);
        snprintf(perms, sizeof perms, "\"%s\"", right);
        TestApp *a = app_new("org.t.netproxy", perms, grant);

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        BrokerNetRequest req = {.host = "127.0.0.1",
                                .port = port,
                                .via = "proxy",
                                .to_peer = "GET / HTTP/1.0\r\n\r\n",
                                .n_to_peer = 18,
                                .to_app = head,
                                .n_to_app = sizeof head - 1};
        ck_assert_int_eq(broker_net_connect(broker, a->id, &req, sp[1], net_done, &d), 0);
        ck_assert_uint_eq(d.calls, 0); /* never before it returned */
        net_wait_done(&d);
        ck_assert_int_eq(d.error, 0);
        ck_assert_str_eq(d.address, "127.0.0.1");
        srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(srv, 0);
        ck_assert(net_wait_readable(srv));
        ck_assert_int_eq(read(srv, buf, sizeof buf), 18);
        ck_assert(net_wait_readable(sp[0]));
        ck_assert_int_eq(read(sp[0], buf, sizeof buf), (ssize_t)(sizeof head - 1));
        close(srv);
        close(sp[0]);

        /* Refused: done later with the error and the sentence; the fd taken. */
        d = (NetDone){0};
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        req = (BrokerNetRequest){.host = "169.254.169.254", .port = 80, .via = "proxy"};
        ck_assert_int_eq(broker_net_connect(broker, a->id, &req, sp[1], net_done, &d), 0);
        ck_assert_uint_eq(d.calls, 0);
        net_wait_done(&d);
        ck_assert_int_eq(d.error, -EPERM);
        ck_assert_msg(strstr(d.why, "metadata"), "%s", d.why);
        ck_assert(net_wait_readable(sp[0]));
        ck_assert_int_eq(read(sp[0], buf, sizeof buf), 0); /* its end was closed */
        close(sp[0]);

        /* No such app: -ESRCH at once, done never called, the fd closed. */
        d = (NetDone){0};
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        ck_assert_int_eq(broker_net_connect(broker, "org.t.nobody", &req, sp[1], net_done, &d),
                         -ESRCH);
        ck_assert_int_eq(read(sp[0], buf, sizeof buf), 0);
        close(sp[0]);
        pump();
        ck_assert_uint_eq(d.calls, 0);
        close(lfd);
}
END_TEST

/* ---- bus --------------------------------------------------------------------------- */

static int publish(TestApp *a, const char *topic, const char *text)
{
        Cella__V1__BusPublishRequest req = CELLA__V1__BUS_PUBLISH_REQUEST__INIT;
        Frame *f = NULL;
        int r;

        req.topic = (char *)topic;
        req.data = (ProtobufCBinaryData){.len = strlen(text), .data = (uint8_t *)text};
        req.content_type = (char *)"text/plain";
        r = call(a, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH, &req.base, &f);
        if (r < 0)
                return r;
        r = (int)((Cella__V1__BusPublishReply *)(void *)f->msg)->delivered;
        frame_free(f);
        return r;
}

static int subscribe(TestApp *a, const char *pattern, uint64_t *ret_id)
{
        Cella__V1__BusSubscribeRequest req = CELLA__V1__BUS_SUBSCRIBE_REQUEST__INIT;
        Frame *f = NULL;
        int r;

        req.pattern = (char *)pattern;
        r = call(a, CELLA__V1__OPCODE__OPCODE_BUS_SUBSCRIBE, &req.base, &f);
        if (r < 0)
                return r;
        if (ret_id)
                *ret_id = ((Cella__V1__BusSubscribeReply *)(void *)f->msg)->subscription_id;
        frame_free(f);
        return 0;
}

/* The next bus message event of a, checked against topic, sender and text. */
static Frame *expect_message(TestApp *a, const char *topic, const char *sender, const char *text)
{
        Frame *f = take(a, 0, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE, WAIT_MS);
        const Cella__V1__BusMessageEvent *m;

        ck_assert_msg(f != NULL, "%s: no bus message", a->id);
        m = (const void *)f->msg;
        ck_assert_str_eq(m->topic, topic);
        ck_assert_str_eq(m->sender, sender);
        ck_assert_uint_eq(m->data.len, strlen(text));
        if (m->data.len > 0)
                ck_assert_int_eq(memcmp(m->data.data, text, m->data.len), 0);
        return f;
}

START_TEST(test_bus_fan_out_and_patterns)
{
        TestApp *pub = app_new("org.t.pub", "\"bus.publish:news.*\"", NULL), *sub[5];
        uint64_t ids[5];

        for (int i = 0; i < 5; i++) {
                char id[32];

                snprintf(id, sizeof id, "org.t.sub%d", i);
                sub[i] = app_new(id, "\"bus.subscribe:news.**\"", NULL);
                /* news.* is covered by the granted news.** */
                ck_assert_int_eq(subscribe(sub[i], "news.*", &ids[i]), 0);
        }
        ck_assert_int_eq(publish(pub, "news.a", "hello"), 5);
        for (int i = 0; i < 5; i++) {
                Frame *f = expect_message(sub[i], "news.a", "org.t.pub", "hello");
                const Cella__V1__BusMessageEvent *m = (const void *)f->msg;

                ck_assert_uint_eq(m->subscription_id, ids[i]);
                ck_assert_str_eq(m->content_type, "text/plain");
                ck_assert_uint_eq(m->reply_token, 0);
                frame_free(f);
        }
        /* Outside the publisher's right; a deeper topic its subscribers' news.* misses. */
        ck_assert_int_eq(publish(pub, "sport.a", "x"), -EPERM);
        ck_assert_int_eq(publish(pub, "news.a.b", "x"), -EPERM);
        ck_assert_int_eq(publish(pub, "news.*", "x"), -EINVAL);
        /* A pattern wider than the grant is refused; a narrower one is fine. */
        ck_assert_int_eq(subscribe(pub, "news.*", NULL), -EPERM);
        ck_assert_int_eq(subscribe(sub[0], "**", NULL), -EPERM);
        ck_assert_int_eq(subscribe(sub[0], "news.**", NULL), 0);
        ck_assert_int_eq(subscribe(sub[0], "news.x.y", NULL), 0);
        ck_assert_int_eq(subscribe(sub[0], "news..x", NULL), -EINVAL);
        /* Unsubscribe: no more messages through it. */
        {
                Cella__V1__BusUnsubscribeRequest u = CELLA__V1__BUS_UNSUBSCRIBE_REQUEST__INIT;

                u.subscription_id = ids[1];
                ck_assert_int_eq(
                        call(sub[1], CELLA__V1__OPCODE__OPCODE_BUS_UNSUBSCRIBE, &u.base, NULL), 0);
                ck_assert_int_eq(
                        call(sub[1], CELLA__V1__OPCODE__OPCODE_BUS_UNSUBSCRIBE, &u.base, NULL),
                        -ENOENT);
        }
        ck_assert_int_eq(publish(pub, "news.b", "again"), 4);
        ck_assert_ptr_null(take(sub[1], 0, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE, 50));
}
END_TEST

START_TEST(test_bus_payload_bounds)
{
        TestApp *pub = app_new("org.t.pub", "\"bus.publish:t\"", NULL),
                *s = app_new("org.t.sub", "\"bus.subscribe:t\"", NULL);
        Cella__V1__BusPublishRequest req = CELLA__V1__BUS_PUBLISH_REQUEST__INIT;
        _cleanup_free_ uint8_t *body = calloc(1, 64513);
        char ct[129];
        Frame *f;

        ck_assert_int_eq(subscribe(s, "t", NULL), 0);
        memset(ct, 'a', 127);
        ct[127] = 0;
        req.topic = (char *)"t";
        req.content_type = ct;
        /* The largest payload and content type: the event carrying them fits a frame. */
        req.data = (ProtobufCBinaryData){.len = 64512, .data = body};
        ck_assert_int_eq(call(pub, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH, &req.base, NULL), 0);
        f = take(s, 0, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE, WAIT_MS);
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(((Cella__V1__BusMessageEvent *)(void *)f->msg)->data.len, 64512);
        frame_free(f);
        req.data.len = 64513;
        ck_assert_int_eq(call(pub, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH, &req.base, NULL),
                         -EMSGSIZE);
        req.data.len = 0;
        ct[127] = 'a';
        ct[128] = 0;
        ck_assert_int_eq(call(pub, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH, &req.base, NULL),
                         -EINVAL);
}
END_TEST

START_TEST(test_bus_slow_subscriber)
{
        TestApp *pub = app_new("org.t.pub", "\"bus.publish:tick\"", NULL),
                *slow = app_new("org.t.slow", "\"bus.subscribe:tick\"", NULL),
                *fast = app_new("org.t.fast", "\"bus.subscribe:tick\"", NULL);
        const unsigned n = 4000;
        BrokerAppStats as;
        BusStats st;
        unsigned got = 0, fast_got = 0;
        char text[16], last[16] = "";
        int64_t t0;

        ck_assert_int_eq(subscribe(slow, "tick", NULL), 0);
        ck_assert_int_eq(subscribe(fast, "tick", NULL), 0);
        slow->no_read = true;
        t0 = now_own_ms();
        for (unsigned i = 0; i < n; i++) {
                snprintf(text, sizeof text, "%u", i);
                /* Never refused or held up by the subscriber that does not read. */
                ck_assert_int_eq(publish(pub, "tick", text), 2);
        }
        ck_assert_int_lt(now_own_ms() - t0, 20000);
        /* The fast one got every message (each wait a hang guard: collect()). */
        while (fast_got < n) {
                Frame *f = take(fast, 0, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE, WAIT_MS);

                ck_assert_msg(f, "message %u of %u did not come", fast_got, n);
                fast_got++;
                frame_free(f);
        }
        ck_assert_ptr_null(take(fast, 0, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE, 50));
        /* The slow one's losses are counted by its bus queue, not its out queue. */
        bus_endpoint_stats(bus_endpoint_find(bus, "org.t.slow"), &st);
        ck_assert_uint_gt(st.dropped, 0);
        broker_app_stats(slow->app, &as);
        ck_assert_uint_eq(as.events_dropped, 0);
        /* Now it reads: what is left comes, ending with the newest message, and every
         * message is either received or counted as dropped. */
        slow->no_read = false;
        bus_endpoint_stats(bus_endpoint_find(bus, "org.t.slow"), &st);
        while (got + st.dropped < n) {
                Frame *f = take(slow, 0, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE, WAIT_MS);
                const Cella__V1__BusMessageEvent *m;

                ck_assert_msg(f, "%u received and %llu dropped of %u", got,
                              (unsigned long long)st.dropped, n);
                m = (const void *)f->msg;
                snprintf(last, sizeof last, "%.*s", (int)m->data.len, m->data.data);
                got++;
                frame_free(f);
                bus_endpoint_stats(bus_endpoint_find(bus, "org.t.slow"), &st);
        }
        ck_assert_ptr_null(take(slow, 0, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE, 50));
        snprintf(text, sizeof text, "%u", n - 1);
        ck_assert_str_eq(last, text);
        bus_endpoint_stats(bus_endpoint_find(bus, "org.t.slow"), &st);
        ck_assert_uint_eq(st.queued, 0);
        ck_assert_uint_eq(got + st.dropped, n);
}
END_TEST

static int bus_send_to(TestApp *a, const char *to, const char *text)
{
        Cella__V1__BusSendRequest req = CELLA__V1__BUS_SEND_REQUEST__INIT;

        req.app_id = (char *)to;
        req.data = (ProtobufCBinaryData){.len = strlen(text), .data = (uint8_t *)text};
        req.content_type = (char *)"";
        return call(a, CELLA__V1__OPCODE__OPCODE_BUS_SEND, &req.base, NULL);
}

START_TEST(test_bus_direct_send)
{
        TestApp *a = app_new("org.t.a", "\"bus.send:org.t.*\"", NULL),
                *b = app_new("org.t.b", "\"timer\"", NULL);
        const Cella__V1__BusMessageEvent *m;
        Frame *f;

        ck_assert_int_eq(bus_send_to(a, "org.t.b", "psst"), 0);
        f = expect_message(b, "", "org.t.a", "psst");
        m = (const void *)f->msg;
        ck_assert_uint_eq(m->subscription_id, 0);
        ck_assert_uint_eq(m->reply_token, 0);
        frame_free(f);
        ck_assert_int_eq(bus_send_to(a, "org.t.gone", "x"), -ENOENT);
        ck_assert_int_eq(bus_send_to(b, "org.t.a", "x"), -EPERM);
        ck_assert_int_eq(bus_send_to(a, "org.other.b", "x"), -EPERM);
        ck_assert_int_eq(bus_send_to(a, "not an id", "x"), -EINVAL);
}
END_TEST

static uint64_t request_send(TestApp *a, const char *to, const char *topic, const char *text,
                             uint32_t timeout_ms)
{
        Cella__V1__BusRequestRequest req = CELLA__V1__BUS_REQUEST_REQUEST__INIT;

        req.app_id = (char *)to;
        req.topic = (char *)topic;
        req.data = (ProtobufCBinaryData){.len = strlen(text), .data = (uint8_t *)text};
        req.content_type = (char *)"text/plain";
        req.timeout_ms = timeout_ms;
        return send_request(a, CELLA__V1__OPCODE__OPCODE_BUS_REQUEST, &req.base);
}

static int bus_reply(TestApp *a, uint64_t token, int errnum, const char *text)
{
        Cella__V1__BusReplyRequest req = CELLA__V1__BUS_REPLY_REQUEST__INIT;

        req.reply_token = token;
        req.errnum = errnum;
        req.data = (ProtobufCBinaryData){.len = strlen(text), .data = (uint8_t *)text};
        req.content_type = (char *)"text/plain";
        return call(a, CELLA__V1__OPCODE__OPCODE_BUS_REPLY, &req.base, NULL);
}

/* The request b received: checks it and returns its reply token. */
static uint64_t expect_request(TestApp *b, const char *topic, const char *from, const char *text)
{
        Frame *f = expect_message(b, topic, from, text);
        uint64_t token = ((Cella__V1__BusMessageEvent *)(void *)f->msg)->reply_token;

        ck_assert_uint_eq(((Cella__V1__BusMessageEvent *)(void *)f->msg)->subscription_id, 0);
        ck_assert_uint_gt(token, 0);
        frame_free(f);
        return token;
}

START_TEST(test_bus_request_reply)
{
        TestApp *a = app_new("org.t.a", "\"bus.send:org.t.b\"", NULL),
                *b = app_new("org.t.b", "\"timer\"", NULL);
        const Cella__V1__BusRequestReply *rep;
        uint64_t id, token;
        Frame *f = NULL;

        id = request_send(a, "org.t.b", "echo.upper", "hi", 5000);
        token = expect_request(b, "echo.upper", "org.t.a", "hi");
        /* The requester is still waiting. */
        ck_assert_ptr_null(take(a, id, 0, 20));
        ck_assert_int_eq(bus_reply(b, token, 0, "HI"), 0);
        ck_assert_int_eq(wait_reply(a, id, &f), 0);
        rep = (const void *)f->msg;
        ck_assert_uint_eq(rep->data.len, 2);
        ck_assert_int_eq(memcmp(rep->data.data, "HI", 2), 0);
        ck_assert_str_eq(rep->content_type, "text/plain");
        ck_assert_str_eq(rep->responder, "org.t.b");
        frame_free(f);
        /* Answered once only; unknown tokens; a token of another app's request. */
        ck_assert_int_eq(bus_reply(b, token, 0, "again"), -ENOENT);
        ck_assert_int_eq(bus_reply(b, 987654, 0, "x"), -ENOENT);
        id = request_send(a, "org.t.b", "m", "", 5000);
        token = expect_request(b, "m", "org.t.a", "");
        ck_assert_int_eq(bus_reply(a, token, 0, "forged"), -ENOENT);
        /* An error answer reaches the requester as its errno. */
        ck_assert_int_eq(bus_reply(b, token, EROFS, ""), 0);
        ck_assert_int_eq(wait_reply(a, id, NULL), -EROFS);
        ck_assert_int_eq(bus_reply(b, 5, -1, ""), -EINVAL);
        /* Timeout: the late answer finds nothing. */
        id = request_send(a, "org.t.b", "slow", "", 30);
        token = expect_request(b, "slow", "org.t.a", "");
        ck_assert_int_eq(wait_reply(a, id, NULL), -ETIMEDOUT);
        ck_assert_int_eq(bus_reply(b, token, 0, "late"), -ENOENT);
        /* Not running; no right. */
        ck_assert_int_eq(wait_reply(a, request_send(a, "org.t.gone", "m", "", 0), NULL), -EPERM);
        ck_assert_int_eq(wait_reply(b, request_send(b, "org.t.a", "m", "", 0), NULL), -EPERM);
}
END_TEST

START_TEST(test_bus_request_peer_gone)
{
        TestApp *a = app_new("org.t.a", "\"bus.send:org.t.*\"", NULL),
                *b = app_new("org.t.b", "\"timer\"", NULL);
        uint64_t id, token;

        ck_assert_int_eq(wait_reply(a, request_send(a, "org.t.gone", "m", "", 0), NULL), -ENOENT);
        /* The responder exits while a request waits for it. */
        id = request_send(a, "org.t.b", "m", "", 5000);
        expect_request(b, "m", "org.t.a", "");
        app_free(b);
        ck_assert_int_eq(wait_reply(a, id, NULL), -ECONNRESET);
        /* The requester exits while waiting: the answer finds nothing, nothing leaks. */
        b = app_new("org.t.b2", "\"timer\"", NULL);
        request_send(a, "org.t.b2", "m", "", 5000);
        token = expect_request(b, "m", "org.t.a", "");
        app_free(a);
        ck_assert_int_eq(bus_reply(b, token, 0, "x"), -ENOENT);
}
END_TEST

/* A request waiting for its answer when the requester's bus.send is revoked: the call
 * is refused and its pending handle closed, so the late answer finds nothing. */
START_TEST(test_bus_revoke_closes_request)
{
        TestApp *a = app_new("org.t.a", "\"bus.send:org.t.b\"", NULL),
                *b = app_new("org.t.b", "\"timer\"", NULL);
        uint64_t id, token;

        id = request_send(a, "org.t.b", "m", "", 5000);
        token = expect_request(b, "m", "org.t.a", "");
        ck_assert_int_ge(grants_revoke(grants, a->id, "bus.send:org.t.b", NULL), 1);
        ck_assert_int_ge(broker_grants_changed(broker, a->id), 1);
        ck_assert_int_eq(wait_reply(a, id, NULL), -EACCES);
        ck_assert_int_eq(bus_reply(b, token, 0, "late"), -ENOENT);
}
END_TEST

/* ---- bus.publish_batch, batched delivery ---- */

static int subscribe_batch(TestApp *a, const char *pattern, bool batch, uint64_t *ret_id)
{
        Cella__V1__BusSubscribeRequest req = CELLA__V1__BUS_SUBSCRIBE_REQUEST__INIT;
        Frame *f = NULL;
        int r;

        req.pattern = (char *)pattern;
        req.batch = batch;
        r = call(a, CELLA__V1__OPCODE__OPCODE_BUS_SUBSCRIBE, &req.base, &f);
        if (r < 0)
                return r;
        if (ret_id)
                *ret_id = ((Cella__V1__BusSubscribeReply *)(void *)f->msg)->subscription_id;
        frame_free(f);
        return 0;
}

#define BATCH_TEST_MAX 1100u /* past the proto's 1024 */

/* Sends a bus.publish_batch of n messages: topics[i % n_topics], payload "<i>" (or
 * len bytes of 'x' if len > 0), content type "text/plain". Returns the request id. */
static uint64_t publish_batch_send(TestApp *a, const char *const *topics, size_t n_topics, size_t n,
                                   size_t len)
{
        static Cella__V1__BusPublishRequest msg[BATCH_TEST_MAX];
        static Cella__V1__BusPublishRequest *ptr[BATCH_TEST_MAX];
        static char text[BATCH_TEST_MAX][16];
        static uint8_t big[64513];
        Cella__V1__BusPublishBatchRequest req = CELLA__V1__BUS_PUBLISH_BATCH_REQUEST__INIT;

        ck_assert_uint_le(n, BATCH_TEST_MAX);
        memset(big, 'x', sizeof big);
        for (size_t i = 0; i < n; i++) {
                msg[i] = (Cella__V1__BusPublishRequest)CELLA__V1__BUS_PUBLISH_REQUEST__INIT;
                msg[i].topic = (char *)topics[i % n_topics];
                snprintf(text[i], sizeof text[i], "%zu", i);
                msg[i].data = len > 0 ? (ProtobufCBinaryData){.len = len, .data = big}
                                      : (ProtobufCBinaryData){.len = strlen(text[i]),
                                                              .data = (uint8_t *)text[i]};
                msg[i].content_type = (char *)"text/plain";
                ptr[i] = &msg[i];
        }
        req.n_messages = n;
        req.messages = ptr;
        return send_request(a, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH_BATCH, &req.base);
}

/* As publish_batch_send(), and waits: 0 with the reply's total of deliveries in
 * *ret_delivered, or the error reply's -errno with its message in err_message. */
static int publish_batch(TestApp *a, const char *const *topics, size_t n_topics, size_t n,
                         size_t len, uint64_t *ret_delivered, char *err_message)
{
        uint64_t id = publish_batch_send(a, topics, n_topics, n, len);
        Frame *f = take(a, id, 0, WAIT_MS);
        int r;

        ck_assert_ptr_nonnull(f);
        r = f->err;
        if (r == 0) {
                const Cella__V1__BusPublishBatchReply *m = (const void *)f->msg;

                ck_assert_uint_eq(m->messages, n);
                if (ret_delivered)
                        *ret_delivered = m->delivered;
        } else if (err_message)
                strcpy(err_message, f->err_message);
        frame_free(f);
        return r;
}

/* What a subscriber got, flattened: each message's topic and payload (up to 15
 * bytes), and how many frames of each kind carried them. */
typedef struct Got {
        unsigned n, singles, batches;
        unsigned largest_batch;
        char topic[8192][16];
        char text[8192][16];
} Got;

static void got_one(Got *g, const Cella__V1__BusMessageEvent *m)
{
        ck_assert_uint_lt(g->n, ELEMENTSOF(g->topic));
        snprintf(g->topic[g->n], sizeof g->topic[0], "%s", m->topic);
        snprintf(g->text[g->n], sizeof g->text[0], "%.*s",
                 (int)(m->data.len < 15 ? m->data.len : 15), m->data.data);
        g->n++;
}

/* Collects a's bus events, in arrival order, until want messages came or nothing
 * came for quiet_ms. A wait for messages asks for exactly the number expected
 * with WAIT_MS, a hang guard (a loaded machine can stall this process longer than
 * any short quiet window); a short window only checks that nothing more comes. */
static void collect(TestApp *a, Got *g, unsigned want, int quiet_ms)
{
        int64_t end = now_ms() + quiet_ms;

        while (g->n < want && now_ms() <= end) {
                Frame **p = &a->inbox, *f = NULL;

                for (; *p; p = &(*p)->next)
                        if (((*p)->flags & CHANNEL_FLAG_EVENT) &&
                            ((*p)->opcode == CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE ||
                             (*p)->opcode == CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGES)) {
                                f = *p;
                                *p = f->next;
                                break;
                        }
                if (!f) {
                        pump();
                        continue;
                }
                if (f->opcode == CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE) {
                        got_one(g, (const void *)f->msg);
                        g->singles++;
                } else {
                        const Cella__V1__BusMessagesEvent *b = (const void *)f->msg;

                        /* Only when more than one is queued; within the proto's bound. */
                        ck_assert_uint_ge(b->n_messages, 2);
                        ck_assert_uint_le(b->n_messages, 256);
                        for (size_t i = 0; i < b->n_messages; i++)
                                got_one(g, b->messages[i]);
                        g->batches++;
                        if (b->n_messages > g->largest_batch)
                                g->largest_batch = (unsigned)b->n_messages;
                }
                frame_free(f);
                end = now_ms() + quiet_ms;
        }
}

/* The payloads "0".."n-1", in order, from position from of g. */
static void expect_sequence(const Got *g, unsigned from, unsigned n)
{
        for (unsigned i = 0; i < n; i++) {
                char want[16];

                snprintf(want, sizeof want, "%u", i);
                ck_assert_str_eq(g->text[from + i], want);
        }
}

typedef struct AuditFind {
        const char *op;
        json_t *last; /* the last call record of op, a copy */
        unsigned n;
} AuditFind;

static int audit_find_cb(const json_t *rec, const char *line, size_t len, void *userdata)
{
        AuditFind *a = userdata;
        const char *op = json_string_value(json_object_get(rec, "op"));

        if (op && strcmp(op, a->op) == 0) {
                json_decref(a->last);
                a->last = json_deep_copy(rec);
                a->n++;
        }
        return 0;
}

/* The number of audit records of op, and the last one (json_decref it). */
static unsigned audit_last(const char *op, json_t **ret)
{
        AuditFind a = {.op = op};
        AuditVerifyReport rep;

        ck_assert_int_eq(audit_flush(audit), 0);
        ck_assert_int_eq(audit_read(state_dir, NULL, audit_find_cb, &a, &rep), 0);
        *ret = a.last;
        return a.n;
}

START_TEST(test_bus_publish_batch_rights)
{
        static const char *const none[] = {NULL};
        static const char *const news[] = {"news.a", "news.b", "news.a"};
        static const char *const mixed[] = {"news.a", "news.b", "sport.a"};
        static const char *const forbidden_last[] = {"news.a", "news.b", "secret.x"};
        static const char *const forbidden_first[] = {"secret.x", "news.a"};
        TestApp *pub = app_new("org.t.pub", "\"bus.publish:news.*\", \"bus.publish:sport.a\"",
                               none),
                *s = app_new("org.t.sub", "\"bus.subscribe:**\"", none);
        _cleanup_free_ Got *g = calloc(1, sizeof *g);
        char err[256] = "";
        uint64_t delivered = 0;
        json_t *rec = NULL, *topics;
        unsigned n_records;

        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(subscribe_batch(s, "**", true, NULL), 0);
        /* Allowed: every message arrives once, in order, in one batched frame. */
        ck_assert_int_eq(publish_batch(pub, news, 3, 3, 0, &delivered, NULL), 0);
        ck_assert_uint_eq(delivered, 3);
        collect(s, g, 3, WAIT_MS);
        ck_assert_uint_eq(g->n, 3);
        ck_assert_uint_eq(g->batches, 1);
        ck_assert_uint_eq(g->singles, 0);
        expect_sequence(g, 0, 3);
        ck_assert_str_eq(g->topic[1], "news.b");
        /* One audit record for the call: count, topics, deliveries. */
        n_records = audit_last("bus.publish_batch", &rec);
        ck_assert_uint_eq(n_records, 1);
        ck_assert_str_eq(json_string_value(json_object_get(rec, "decision")), "allowed");
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "messages")), 3);
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "delivered")), 3);
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "topics_total")), 2);
        topics = json_object_get(rec, "topics");
        ck_assert_uint_eq(json_array_size(topics), 2);
        ck_assert_str_eq(json_string_value(json_array_get(topics, 1)), "news.b");
        rec = (json_decref(rec), NULL);

        /* Mixed topics, all granted. */
        ck_assert_int_eq(publish_batch(pub, mixed, 3, 6, 0, &delivered, NULL), 0);
        ck_assert_uint_eq(delivered, 6);
        *g = (Got){};
        collect(s, g, 6, WAIT_MS);
        ck_assert_uint_eq(g->n, 6);
        ck_assert_str_eq(g->topic[5], "sport.a");

        /* One topic outside the manifest refuses the whole call (EPERM), naming it,
         * wherever it is in the batch; nothing is published. */
        ck_assert_int_eq(publish_batch(pub, forbidden_last, 3, 3, 0, NULL, err), -EPERM);
        ck_assert_ptr_nonnull(strstr(err, "bus.publish:secret.x"));
        ck_assert_int_eq(publish_batch(pub, forbidden_first, 2, 2, 0, NULL, err), -EPERM);
        ck_assert_ptr_nonnull(strstr(err, "secret.x"));
        /* One requested but not granted (revoked): EACCES, naming it. */
        ck_assert_int_ge(grants_revoke(grants, pub->id, "bus.publish:sport.a", NULL), 1);
        ck_assert_int_ge(broker_grants_changed(broker, pub->id), 1);
        ck_assert_int_eq(publish_batch(pub, mixed, 3, 3, 0, NULL, err), -EACCES);
        ck_assert_ptr_nonnull(strstr(err, "bus.publish:sport.a"));
        *g = (Got){};
        collect(s, g, 1, 100);
        ck_assert_uint_eq(g->n, 0);
        /* The refusals' records name the topic refused and count as refused. */
        n_records = audit_last("bus.publish_batch", &rec);
        ck_assert_uint_eq(n_records, 5);
        ck_assert_str_eq(json_string_value(json_object_get(rec, "decision")), "refused");
        ck_assert_str_eq(json_string_value(json_object_get(rec, "right")), "bus.publish:sport.a");
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "errno")), EACCES);
        json_decref(rec);
        /* The rest still goes. */
        ck_assert_int_eq(publish_batch(pub, news, 2, 2, 0, &delivered, NULL), 0);
        ck_assert_uint_eq(delivered, 2);
}
END_TEST

START_TEST(test_bus_publish_batch_bounds)
{
        static const char *const t[] = {"t"};
        static const char *const bad_middle[] = {"t", "t", "t..x", "t"};
        static const char *const globbed[] = {"t", "t.*"};
        TestApp *pub = app_new("org.t.pub", "\"bus.publish:**\"", NULL),
                *s = app_new("org.t.sub", "\"bus.subscribe:**\"", NULL);
        Cella__V1__BusPublishBatchRequest empty = CELLA__V1__BUS_PUBLISH_BATCH_REQUEST__INIT;
        static char names[66][8];
        const char *many_topics[66];
        char long_topic[256];
        const char *long_topics[] = {"t", long_topic};
        _cleanup_free_ Got *g = calloc(1, sizeof *g);
        uint64_t delivered;

        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(subscribe_batch(s, "**", true, NULL), 0);
        /* 0 and 1025 messages; 1024 is fine. */
        ck_assert_int_eq(call(pub, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH_BATCH, &empty.base, NULL),
                         -EINVAL);
        ck_assert_int_eq(publish_batch(pub, t, 1, 1025, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(publish_batch(pub, t, 1, 1024, 0, &delivered, NULL), 0);
        ck_assert_uint_eq(delivered, 1024);
        collect(s, g, 1024, WAIT_MS);
        ck_assert_uint_eq(g->n, 1024);
        expect_sequence(g, 0, 1024);
        /* 64 distinct topics; 65 are too many. */
        for (unsigned i = 0; i < 66; i++) {
                snprintf(names[i], sizeof names[i], "t%u", i);
                many_topics[i] = names[i];
        }
        ck_assert_int_eq(publish_batch(pub, many_topics, 64, 128, 0, &delivered, NULL), 0);
        ck_assert_int_eq(publish_batch(pub, many_topics, 65, 65, 0, NULL, NULL), -EINVAL);
        /* A bad field anywhere refuses the call before anything is published. */
        ck_assert_int_eq(publish_batch(pub, bad_middle, 4, 4, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(publish_batch(pub, globbed, 2, 2, 0, NULL, NULL), -EINVAL);
        memset(long_topic, 'a', 250);
        long_topic[250] = 0; /* a topic, but "bus.publish:" + it is too long for a right */
        ck_assert_int_eq(publish_batch(pub, long_topics, 2, 2, 0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(publish_batch(pub, t, 1, 1, 64513, NULL, NULL), -EMSGSIZE);
        /* The largest payload still goes, alone in its event. */
        ck_assert_int_eq(publish_batch(pub, t, 1, 1, 64512, &delivered, NULL), 0);
        *g = (Got){};
        collect(s, g, 129, WAIT_MS); /* the 128 of the 64 topics, then the big one */
        ck_assert_uint_eq(g->n, 129);
        collect(s, g, 130, 100); /* and nothing after them */
        ck_assert_uint_eq(g->n, 129);
        ck_assert_str_eq(g->topic[127], "t63");
        ck_assert_uint_eq(g->singles, 1);
}
END_TEST

START_TEST(test_bus_batched_delivery)
{
        static const char *const t[] = {"t"};
        TestApp *pub = app_new("org.t.pub", "\"bus.publish:t\", \"bus.send:org.t.*\"", NULL),
                *s1 = app_new("org.t.s1", "\"bus.subscribe:t\"", NULL),
                *s2 = app_new("org.t.s2", "\"bus.subscribe:t\"", NULL),
                *old = app_new("org.t.old", "\"bus.subscribe:t\"", NULL);
        _cleanup_free_ Got *g = calloc(1, sizeof *g);
        TestApp *subs[] = {s1, s2, old};
        uint64_t delivered;
        BusStats st;

        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(subscribe_batch(s1, "t", true, NULL), 0);
        ck_assert_int_eq(subscribe_batch(s2, "t", true, NULL), 0);
        ck_assert_int_eq(subscribe_batch(old, "t", false, NULL), 0); /* an older client */
        /* More messages in one call than a bus queue holds (256): the readers lose none. */
        ck_assert_int_eq(publish_batch(pub, t, 1, 1000, 0, &delivered, NULL), 0);
        ck_assert_uint_eq(delivered, 3000);
        /* And a direct message after them: alone, after them. */
        ck_assert_int_eq(bus_send_to(pub, "org.t.s1", "direct"), 0);
        for (unsigned k = 0; k < 3; k++) {
                *g = (Got){};
                collect(subs[k], g, k == 0 ? 1001 : 1000, WAIT_MS);
                ck_assert_uint_eq(g->n, k == 0 ? 1001 : 1000);
                expect_sequence(g, 0, 1000);
                if (subs[k] == old) {
                        ck_assert_uint_eq(g->batches, 0);
                        ck_assert_uint_eq(g->singles, 1000);
                } else {
                        /* 256 per frame at most: at least 4 frames; few of them. */
                        ck_assert_uint_ge(g->batches, 4);
                        ck_assert_uint_le(g->batches + g->singles, 40);
                        ck_assert_uint_eq(g->largest_batch, 256);
                }
                if (k == 0) {
                        ck_assert_str_eq(g->text[1000], "direct");
                        ck_assert_str_eq(g->topic[1000], "");
                }
                bus_endpoint_stats(bus_endpoint_find(bus, subs[k]->id), &st);
                ck_assert_uint_eq(st.dropped, 0);
                ck_assert_uint_eq(st.queued, 0);
        }
        /* Batched frames stay within a body: 20 KiB payloads go 3 to a frame, even
         * when 6 are queued at once (both calls read in one go). */
        {
                uint64_t a = publish_batch_send(pub, t, 1, 3, 20000),
                         b = publish_batch_send(pub, t, 1, 3, 20000);

                ck_assert_int_eq(wait_reply(pub, a, NULL), 0);
                ck_assert_int_eq(wait_reply(pub, b, NULL), 0);
        }
        *g = (Got){};
        collect(s1, g, 6, WAIT_MS);
        ck_assert_uint_eq(g->n, 6);
        ck_assert_uint_eq(g->largest_batch, 3);
}
END_TEST

START_TEST(test_bus_batch_slow_subscriber)
{
        static const char *const t[] = {"t"};
        TestApp *pub = app_new("org.t.pub", "\"bus.publish:t\"", NULL),
                *slow = app_new("org.t.slow", "\"bus.subscribe:t\"", NULL),
                *fast = app_new("org.t.fast", "\"bus.subscribe:t\"", NULL);
        const unsigned calls = 6, per_call = 1000, n = calls * per_call;
        _cleanup_free_ Got *g = calloc(1, sizeof *g), *gs = calloc(1, sizeof *gs);
        Got *fast_got;
        BrokerAppStats as;
        BusStats st;

        ck_assert_ptr_nonnull(g);
        ck_assert_ptr_nonnull(gs);
        fast_got = g;
        /* slow: one frame per message (an older client), and it does not read: its
         * socket, then its out queue (1024 frames), then its bus queue fill. */
        ck_assert_int_eq(subscribe_batch(slow, "t", false, NULL), 0);
        ck_assert_int_eq(subscribe_batch(fast, "t", true, NULL), 0);
        slow->no_read = true;
        for (unsigned i = 0; i < calls; i++)
                /* Never refused or held up by the subscriber that does not read. */
                ck_assert_int_eq(publish_batch(pub, t, 1, per_call, 0, NULL, NULL), 0);
        /* The fast one got every message of every batch, in order. */
        collect(fast, fast_got, n, WAIT_MS);
        ck_assert_uint_eq(fast_got->n, n);
        for (unsigned i = 0; i < calls; i++)
                expect_sequence(fast_got, i * per_call, per_call);
        bus_endpoint_stats(bus_endpoint_find(bus, "org.t.fast"), &st);
        ck_assert_uint_eq(st.dropped, 0);
        /* The slow one's losses, during the batches, are counted by its bus queue
         * (drop-oldest), not by its out queue. */
        bus_endpoint_stats(bus_endpoint_find(bus, "org.t.slow"), &st);
        ck_assert_uint_gt(st.dropped, 0);
        broker_app_stats(slow->app, &as);
        ck_assert_uint_eq(as.events_dropped, 0);
        /* It reads now: the rest comes, ending with the newest message; every message
         * is either received or counted as dropped. */
        slow->no_read = false;
        bus_endpoint_stats(bus_endpoint_find(bus, "org.t.slow"), &st);
        collect(slow, gs, n - (unsigned)st.dropped, WAIT_MS);
        collect(slow, gs, n, 100); /* and nothing after them */
        ck_assert_str_eq(gs->text[gs->n - 1], "999");
        bus_endpoint_stats(bus_endpoint_find(bus, "org.t.slow"), &st);
        ck_assert_uint_eq(st.queued, 0);
        ck_assert_uint_eq(gs->n + st.dropped, n);
}
END_TEST

START_TEST(test_bus_revoke_closes_subscription)
{
        static const char *const none[] = {NULL};
        TestApp *pub = app_new("org.t.pub", "\"bus.publish:t\"", none),
                *s = app_new("org.t.sub", "\"bus.subscribe:t\"", none);

        ck_assert_int_eq(subscribe(s, "t", NULL), 0);
        ck_assert_int_eq(publish(pub, "t", "1"), 1);
        frame_free(expect_message(s, "t", "org.t.pub", "1"));
        /* A message queued on the bus before the revoke is not delivered after it. */
        ck_assert_int_eq(bus_publish(bus, NULL, "t", "", "queued", 6), 1);
        ck_assert_int_ge(grants_revoke(grants, s->id, "bus.subscribe:t", NULL), 1);
        ck_assert_int_ge(broker_grants_changed(broker, s->id), 1);
        ck_assert_int_eq(publish(pub, "t", "2"), 0);
        ck_assert_ptr_null(take(s, 0, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE, 50));
        ck_assert_int_eq(subscribe(s, "t", NULL), -EACCES);
}
END_TEST

/* ---- one-time grants and calls that need more than one right ---------------------- */

/* Grants right to a once (a one-time grant) and has the broker load it. */
static void grant_once(TestApp *a, const char *right)
{
        ck_assert_int_eq(grants_grant(grants, a->id, right, true, GRANT_BY_USER, grants_now_ms()),
                         0);
        ck_assert_int_ge(broker_grants_changed(broker, a->id), 0);
}

/* A call refused for one of its rights uses up no one-time grant that covers another
 * (fs.open for reading and writing; bus.publish_batch's topics); one allowed uses
 * each up, once for the whole call. */
START_TEST(test_one_time_not_spent_on_refusal)
{
        static const char *const none[] = {NULL};
        static const char *const ab[] = {"news.a", "news.b"};
        static const char *const a_only[] = {"news.a"};
        TestApp *f = app_new("org.t.once", "\"fs.read:documents\",\"fs.write:documents\"", NULL),
                *p = app_new("org.t.oncepub", "\"bus.publish:news.a\", \"bus.publish:news.b\"",
                             none),
                *w = app_new("org.t.wide", "\"bus.publish:news.*\"", none);
        char err[256] = "";
        json_t *rec = NULL;
        int fd;

        /* fs.open rw with a one-time fs.write and no fs.read: refused, for fs.read,
         * and the record says so... */
        grant_once(f, "fs.write:documents");
        ck_assert_int_eq(fs_open(f, "documents", "once.txt", R | W | CR, 0600, NULL, NULL),
                         -EACCES);
        audit_last("fs.open", &rec);
        ck_assert_str_eq(json_string_value(json_object_get(rec, "decision")), "refused");
        ck_assert_str_eq(json_string_value(json_object_get(rec, "right")), "fs.read:documents");
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "errno")), EACCES);
        rec = (json_decref(rec), NULL);
        /* ...and the one-time fs.write is still there for a write-only open, which
         * uses it up. */
        ck_assert_int_eq(fs_open(f, "documents", "once.txt", W | CR, 0600, &fd, NULL), 0);
        close(fd);
        ck_assert_int_eq(fs_open(f, "documents", "once.txt", W, 0, NULL, NULL), -EACCES);
        /* Both one-time: the rw open is allowed and uses both up. */
        grant_once(f, "fs.write:documents");
        grant_once(f, "fs.read:documents");
        ck_assert_int_eq(fs_open(f, "documents", "once.txt", R | W, 0, &fd, NULL), 0);
        close(fd);
        ck_assert_int_eq(fs_open(f, "documents", "once.txt", R, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(f, "documents", "once.txt", W, 0, NULL, NULL), -EACCES);

        /* bus.publish_batch: news.a once, news.b not granted: refused naming news.b,
         * and news.a's one-time grant is left for the next call. */
        ck_assert_int_ge(grants_revoke(grants, p->id, "bus.publish:news.a", NULL), 1);
        ck_assert_int_ge(grants_revoke(grants, p->id, "bus.publish:news.b", NULL), 1);
        ck_assert_int_ge(broker_grants_changed(broker, p->id), 0);
        grant_once(p, "bus.publish:news.a");
        ck_assert_int_eq(publish_batch(p, ab, 2, 2, 0, NULL, err), -EACCES);
        ck_assert_ptr_nonnull(strstr(err, "bus.publish:news.b"));
        ck_assert_int_eq(publish_batch(p, a_only, 1, 1, 0, NULL, NULL), 0);
        ck_assert_int_eq(publish_batch(p, a_only, 1, 1, 0, NULL, err), -EACCES);
        /* One one-time grant that covers two topics of a batch: one call, one use. */
        ck_assert_int_ge(grants_revoke(grants, w->id, "bus.publish:news.*", NULL), 1);
        ck_assert_int_ge(broker_grants_changed(broker, w->id), 0);
        grant_once(w, "bus.publish:news.*");
        ck_assert_int_eq(publish_batch(w, ab, 2, 2, 0, NULL, NULL), 0);
        ck_assert_int_eq(publish_batch(w, a_only, 1, 1, 0, NULL, err), -EACCES);
}
END_TEST

/* ---- fs beneath a root: identity, file types, list, stat, mkdir, rename, unlink ------- */

/* Writes dir/name with text, owned by uid:gid with mode. */
static void file_as(const char *dir, const char *name, const char *text, uid_t uid, gid_t gid,
                    mode_t mode)
{
        char p[PATH_MAX];

        write_file(dir, name, text);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        ck_assert_int_eq(chown(p, uid, gid), 0);
        ck_assert_int_eq(chmod(p, mode), 0);
}

static void dir_as(const char *dir, const char *name, uid_t uid, gid_t gid, mode_t mode)
{
        char p[PATH_MAX];

        snprintf(p, sizeof p, "%s/%s", dir, name);
        ck_assert_int_eq(mkdir(p, mode), 0);
        ck_assert_int_eq(chown(p, uid, gid), 0);
        ck_assert_int_eq(chmod(p, mode), 0);
}

static void file_text(const char *dir, const char *name, char *buf, size_t size)
{
        char p[PATH_MAX];
        ssize_t n;
        int fd;

        snprintf(p, sizeof p, "%s/%s", dir, name);
        fd = open(p, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        n = read(fd, buf, size - 1);
        ck_assert_int_ge(n, 0);
        buf[n] = 0;
        close(fd);
}

/* True if an IN_OPEN event is waiting on inotify fd ino. */
static bool was_opened(int ino)
{
        _Alignas(struct inotify_event) char buf[4096];
        ssize_t n = read(ino, buf, sizeof buf);

        if (n < 0) {
                ck_assert_int_eq(errno, EAGAIN);
                return false;
        }
        for (ssize_t pos = 0; pos < n;) {
                const struct inotify_event *e = (const void *)(buf + pos);

                if (e->mask & IN_OPEN)
                        return true;
                pos += (ssize_t)(sizeof *e + e->len);
        }
        return false;
}

static const char *const rw_all[] = {"fs.read:documents", "fs.write:documents", "fs.read:shared",
                                     "fs.write:shared", NULL};
#define RW_ALL_PERMS                                                                               \
        "\"fs.read:documents\",\"fs.write:documents\",\"fs.read:shared\",\"fs.write:shared\""

/* The kernel acts with the permissions of the root's owner (4242 here), never as
 * root: what that user may not read, write or truncate, the app may not either. */
START_TEST(test_fs_acts_as_root_owner)
{
        TestApp *a = app_new("org.t.files", RW_ALL_PERMS, rw_all);
        char buf[64], p[512];
        struct stat st;
        int fd;

        file_as(docs_dir, "secret", "root only", 0, 0, 0600);
        file_as(docs_dir, "ro.txt", "keep me", OWNER_UID, OWNER_GID, 0444);
        file_as(docs_dir, "mine", "mine", OWNER_UID, OWNER_GID, 0600);
        dir_as(docs_dir, "private", 0, 0, 0700);
        file_as(docs_dir, "private/open.txt", "x", 0, 0, 0644);

        ck_assert_int_eq(fs_open(a, "documents", "secret", R, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(a, "documents", "ro.txt", W | TR, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(a, "documents", "ro.txt", R | W | TR, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(a, "documents", "ro.txt", W | AP, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(a, "documents", "ro.txt", W | CR, 0644, NULL, NULL), -EACCES);
        file_text(docs_dir, "ro.txt", buf, sizeof buf);
        ck_assert_str_eq(buf, "keep me");
        /* A directory the owner cannot search hides what is in it. */
        ck_assert_int_eq(fs_open(a, "documents", "private/open.txt", R, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(a, "documents", "private/new", W | CR, 0644, NULL, NULL), -EACCES);
        snprintf(p, sizeof p, "%s/private/new", docs_dir);
        ck_assert_int_eq(access(p, F_OK), -1);
        /* What the owner may do works. */
        ck_assert_int_eq(fs_open(a, "documents", "mine", R | W, 0, &fd, NULL), 0);
        close(fd);
        ck_assert_int_eq(fs_open(a, "documents", "ro.txt", R, 0, &fd, NULL), 0);
        close(fd);

        /* A root owned by root is acted on as nobody: "other" bits only. */
        file_as(shared_dir, "readme", "public", 0, 0, 0644);
        file_as(shared_dir, "shadow", "root only", 0, 0, 0600);
        file_as(shared_dir, "rootfile", "root's", 0, 0, 0644);
        ck_assert_int_eq(fs_open(a, "shared", "readme", R, 0, &fd, NULL), 0);
        ck_assert_int_eq(read(fd, buf, sizeof buf), 6);
        close(fd);
        ck_assert_int_eq(fs_open(a, "shared", "shadow", R, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(a, "shared", "rootfile", W | TR, 0, NULL, NULL), -EACCES);
        ck_assert_int_eq(fs_open(a, "shared", "new", W | CR, 0644, NULL, NULL), -EACCES);
        ck_assert_int_eq(stat(shared_dir, &st), 0);
        file_text(shared_dir, "rootfile", buf, sizeof buf);
        ck_assert_str_eq(buf, "root's");
}
END_TEST

/* An owner with a passwd entry acts with its primary group from that entry (and its
 * supplementary groups), not with the root directory's group. */
START_TEST(test_fs_owner_groups_from_passwd)
{
        TestApp *a = app_new("org.t.files", RW_ALL_PERMS, rw_all);
        struct passwd *pw = getpwnam("daemon"); /* uid 1, group 1 on Debian and Fedora */
        int fd;

        ck_assert_msg(pw && pw->pw_uid != 0 && pw->pw_gid != OWNER_GID,
                      "this test needs the system user daemon");
        /* Before the first call: the kernel learns the owner when it opens the root. */
        ck_assert_int_eq(chown(docs_dir, pw->pw_uid, OWNER_GID), 0);
        file_as(docs_dir, "by-group", "g", OWNER_UID, pw->pw_gid, 0640);
        file_as(docs_dir, "dir-group", "d", OWNER_UID, OWNER_GID, 0640);
        ck_assert_int_eq(fs_open(a, "documents", "by-group", R, 0, &fd, NULL), 0);
        close(fd);
        ck_assert_int_eq(fs_open(a, "documents", "dir-group", R, 0, NULL, NULL), -EACCES);
}
END_TEST

/* Only regular files are opened, and their type is known before the open: a FIFO or
 * a device node is never opened (no open side effect, no stall). */
START_TEST(test_fs_open_checks_type_first)
{
        TestApp *a = app_new("org.t.files", RW_ALL_PERMS, rw_all);
        char p[512], sock_path[512];
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int ino, s, fd;

        snprintf(p, sizeof p, "%s/fifo", docs_dir);
        ck_assert_int_eq(mkfifo(p, 0666), 0);
        ck_assert_int_eq(chown(p, OWNER_UID, OWNER_GID), 0);
        ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        ck_assert_int_ge(ino, 0);
        ck_assert_int_ge(inotify_add_watch(ino, p, IN_OPEN), 0);
        snprintf(p, sizeof p, "%s/null", docs_dir);
        ck_assert_int_eq(mknod(p, S_IFCHR | 0666, makedev(1, 3)), 0);
        ck_assert_int_ge(inotify_add_watch(ino, p, IN_OPEN), 0);
        snprintf(sock_path, sizeof sock_path, "%s/sock", docs_dir);
        s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(s, 0);
        ck_assert_uint_lt(strlen(sock_path), sizeof sa.sun_path);
        memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
        ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);

        for (uint32_t f = R; f <= (R | W); f++) {
                ck_assert_int_eq(fs_open(a, "documents", "fifo", f, 0, NULL, NULL), -ENXIO);
                ck_assert_int_eq(fs_open(a, "documents", "null", f, 0, NULL, NULL), -ENXIO);
                ck_assert_int_eq(fs_open(a, "documents", "sock", f, 0, NULL, NULL), -ENXIO);
        }
        ck_assert_int_eq(fs_open(a, "documents", "fifo", W | CR, 0644, NULL, NULL), -ENXIO);
        ck_assert_int_eq(fs_open(a, "documents", "null", W | TR, 0, NULL, NULL), -ENXIO);
        ck_assert(!was_opened(ino));
        /* The watch works: an open here is seen. */
        fd = open(p, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert(was_opened(ino));
        close(ino);
        close(s);
}
END_TEST

/* A file another program holds a lease on: EAGAIN at once, not a wait of
 * lease-break-time (45 s by default) on the kernel's loop. */
START_TEST(test_fs_open_leased_file_does_not_block)
{
        TestApp *a = app_new("org.t.files", RW_ALL_PERMS, rw_all);
        char p[512];
        int64_t t0;
        int lease;

        ck_assert_ptr_ne(signal(SIGIO, SIG_IGN), SIG_ERR); /* the lease break's signal */
        file_as(docs_dir, "leased", "x", OWNER_UID, OWNER_GID, 0644);
        snprintf(p, sizeof p, "%s/leased", docs_dir);
        lease = open(p, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(lease, 0);
        ck_assert_int_eq(fcntl(lease, F_SETLEASE, F_RDLCK), 0);
        t0 = now_own_ms();
        ck_assert_int_eq(fs_open(a, "documents", "leased", W, 0, NULL, NULL), -EAGAIN);
        ck_assert_int_lt(now_own_ms() - t0, 1000);
        /* A read does not break a read lease. */
        ck_assert_int_eq(fs_open(a, "documents", "leased", R, 0, NULL, NULL), 0);
        close(lease);
}
END_TEST

/* A passed fd is a regular file: it names nothing else. */
START_TEST(test_fs_open_fd_names_nothing_else)
{
        TestApp *a = app_new("org.t.files", RW_ALL_PERMS, rw_all);
        char p[64];
        int fd, fd2;

        ck_assert_int_eq(fs_open(a, "documents", "hello.txt", R, 0, &fd, NULL), 0);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_PATH, 0);
        ck_assert_int_eq(openat(fd, "..", O_RDONLY | O_CLOEXEC), -1);
        ck_assert_int_eq(errno, ENOTDIR);
        ck_assert_int_eq(fchdir(fd), -1);
        ck_assert_int_eq(errno, ENOTDIR);
        snprintf(p, sizeof p, "/proc/self/fd/%d/..", fd);
        fd2 = open(p, O_RDONLY | O_CLOEXEC);
        ck_assert_int_eq(fd2, -1);
        ck_assert_int_eq(errno, ENOTDIR);
        close(fd);
}
END_TEST

static int fs_list(TestApp *a, const char *root, const char *path, uint64_t cookie, unsigned max,
                   Frame **ret)
{
        Cella__V1__FsListRequest req = CELLA__V1__FS_LIST_REQUEST__INIT;

        req.root = (char *)root;
        req.path = (char *)path;
        req.cookie = cookie;
        req.max_entries = max;
        return call(a, CELLA__V1__OPCODE__OPCODE_FS_LIST, &req.base, ret);
}

static int fs_stat(TestApp *a, const char *root, const char *path, bool no_follow,
                   Cella__V1__FsStatReply *ret)
{
        Cella__V1__FsStatRequest req = CELLA__V1__FS_STAT_REQUEST__INIT;
        Frame *f = NULL;
        int r;

        req.root = (char *)root;
        req.path = (char *)path;
        req.no_follow = no_follow;
        r = call(a, CELLA__V1__OPCODE__OPCODE_FS_STAT, &req.base, &f);
        if (r < 0)
                return r;
        if (ret)
                *ret = *(Cella__V1__FsStatReply *)(void *)f->msg;
        frame_free(f);
        return 0;
}

static int fs_mkdir(TestApp *a, const char *root, const char *path, unsigned mode)
{
        Cella__V1__FsMkdirRequest req = CELLA__V1__FS_MKDIR_REQUEST__INIT;

        req.root = (char *)root;
        req.path = (char *)path;
        req.mode = mode;
        return call(a, CELLA__V1__OPCODE__OPCODE_FS_MKDIR, &req.base, NULL);
}

static int fs_rename(TestApp *a, const char *root, const char *from, const char *to, uint32_t flags)
{
        Cella__V1__FsRenameRequest req = CELLA__V1__FS_RENAME_REQUEST__INIT;

        req.root = (char *)root;
        req.old_path = (char *)from;
        req.new_path = (char *)to;
        req.flags = flags;
        return call(a, CELLA__V1__OPCODE__OPCODE_FS_RENAME, &req.base, NULL);
}

static int fs_unlink(TestApp *a, const char *root, const char *path)
{
        Cella__V1__FsUnlinkRequest req = CELLA__V1__FS_UNLINK_REQUEST__INIT;

        req.root = (char *)root;
        req.path = (char *)path;
        return call(a, CELLA__V1__OPCODE__OPCODE_FS_UNLINK, &req.base, NULL);
}

#define T_REG   CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_REGULAR
#define T_DIR   CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_DIRECTORY
#define T_LNK   CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_SYMLINK
#define T_OTHER CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_OTHER

/* Pages through path of root; *ret_seen[i] counts "f<i>" entries. Returns pages. */
static unsigned list_all(TestApp *a, const char *path, unsigned max, unsigned *seen,
                         unsigned n_seen, unsigned *ret_skipped)
{
        uint64_t cookie = 0;
        unsigned pages = 0;

        *ret_skipped = 0;
        for (;;) {
                Frame *f = NULL;
                const Cella__V1__FsListReply *m;
                size_t size;

                ck_assert_int_eq(fs_list(a, "documents", path, cookie, max, &f), 0);
                m = (const void *)f->msg;
                size = protobuf_c_message_get_packed_size(f->msg);
                ck_assert_uint_le(size, 65536);
                ck_assert_uint_le(m->n_entries, max ? max : 256);
                pages++;
                ck_assert_uint_lt(pages, 10000);
                *ret_skipped += m->skipped;
                for (size_t i = 0; i < m->n_entries; i++) {
                        unsigned k;

                        ck_assert_str_ne(m->entries[i]->name, ".");
                        ck_assert_str_ne(m->entries[i]->name, "..");
                        if (sscanf(m->entries[i]->name, "f%u", &k) == 1 && k < n_seen) {
                                ck_assert_int_eq(m->entries[i]->type, T_REG);
                                ck_assert_uint_eq(m->entries[i]->size_bytes, 1);
                                seen[k]++;
                        }
                }
                cookie = m->next_cookie;
                if (m->end) {
                        frame_free(f);
                        return pages;
                }
                ck_assert_uint_gt(m->n_entries + m->skipped, 0);
                frame_free(f);
        }
}

START_TEST(test_fs_list)
{
        static const char *const ro[] = {"fs.read:documents", NULL};
        static const char *const wo[] = {"fs.write:documents", NULL};
        TestApp *a = app_new("org.t.lister", "\"fs.read:documents\",\"fs.write:documents\"", ro),
                *w = app_new("org.t.writer", "\"fs.read:documents\",\"fs.write:documents\"", wo);
        enum { N = 600 };
        static unsigned seen[N];
        char name[300], p[512];
        unsigned skipped, pages;
        Frame *f = NULL;
        const Cella__V1__FsListReply *m;
        json_t *rec;

        dir_as(docs_dir, "many", OWNER_UID, OWNER_GID, 0755);
        snprintf(p, sizeof p, "%s/many", docs_dir);
        for (unsigned i = 0; i < N; i++) {
                snprintf(name, sizeof name, "f%u", i);
                write_file(p, name, "x");
        }
        write_file(p, "bad-\xff-name", "x"); /* not UTF-8: cannot be named, left out */

        /* Every entry exactly once, over pages of 256, then of 7. */
        memset(seen, 0, sizeof seen);
        pages = list_all(a, "many", 0, seen, N, &skipped);
        ck_assert_uint_ge(pages, 3);
        ck_assert_uint_eq(skipped, 1);
        for (unsigned i = 0; i < N; i++)
                ck_assert_msg(seen[i] == 1, "f%u seen %u times", i, seen[i]);
        memset(seen, 0, sizeof seen);
        pages = list_all(a, "many", 7, seen, N, &skipped);
        ck_assert_uint_ge(pages, N / 7);
        for (unsigned i = 0; i < N; i++)
                ck_assert_msg(seen[i] == 1, "f%u seen %u times", i, seen[i]);

        /* Names left out count towards a page's work: 1500 of them cost pages,
         * not one scan of the whole directory. */
        dir_as(docs_dir, "bad", OWNER_UID, OWNER_GID, 0755);
        snprintf(p, sizeof p, "%s/bad", docs_dir);
        for (unsigned i = 0; i < 1500; i++) {
                snprintf(name, sizeof name, "\xff%u", i);
                write_file(p, name, "x");
        }
        pages = list_all(a, "bad", 0, seen, 0, &skipped);
        ck_assert_uint_eq(skipped, 1500);
        ck_assert_uint_ge(pages, 2);

        /* Long names: the byte cap ends a page before 256 entries. */
        dir_as(docs_dir, "long", OWNER_UID, OWNER_GID, 0755);
        snprintf(p, sizeof p, "%s/long", docs_dir);
        for (unsigned i = 0; i < 300; i++) {
                memset(name, 'n', 255);
                snprintf(name, 8, "%07u", i);
                name[7] = 'n';
                name[255] = 0;
                write_file(p, name, "");
        }
        ck_assert_int_eq(fs_list(a, "documents", "long", 0, 0, &f), 0);
        m = (const void *)f->msg;
        ck_assert_uint_gt(m->n_entries, 100);
        ck_assert_uint_lt(m->n_entries, 256);
        ck_assert(!m->end);
        frame_free(f);

        /* Types, sizes, the root itself; symlinks are not followed. */
        snprintf(p, sizeof p, "%s/link-out", docs_dir);
        ck_assert_int_eq(symlink("/etc", p), 0);
        snprintf(p, sizeof p, "%s/fifo", docs_dir);
        ck_assert_int_eq(mkfifo(p, 0644), 0);
        ck_assert_int_eq(fs_list(a, "documents", ".", 0, 0, &f), 0);
        m = (const void *)f->msg;
        ck_assert(m->end);
        for (size_t i = 0; i < m->n_entries; i++) {
                const Cella__V1__FsEntry *e = m->entries[i];

                if (strcmp(e->name, "hello.txt") == 0) {
                        ck_assert_int_eq(e->type, T_REG);
                        ck_assert_uint_eq(e->size_bytes, 5);
                        ck_assert_int_gt(e->mtime_ns, 0);
                } else if (strcmp(e->name, "many") == 0)
                        ck_assert_int_eq(e->type, T_DIR);
                else if (strcmp(e->name, "link-out") == 0) {
                        ck_assert_int_eq(e->type, T_LNK);
                        ck_assert_uint_eq(e->size_bytes, 4);
                } else if (strcmp(e->name, "fifo") == 0)
                        ck_assert_int_eq(e->type, T_OTHER);
        }
        ck_assert_uint_eq(m->n_entries, 6); /* hello.txt many bad long link-out fifo */
        frame_free(f);
        ck_assert_uint_ge(audit_last("fs.list", &rec), 1);
        ck_assert_str_eq(json_string_value(json_object_get(rec, "path")), ".");
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "entries")), 6);
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "as_uid")), OWNER_UID);
        json_decref(rec);

        /* Refused. */
        ck_assert_int_eq(fs_list(a, "documents", "..", 0, 0, NULL), -EXDEV);
        ck_assert_int_eq(fs_list(a, "documents", "/", 0, 0, NULL), -EXDEV);
        ck_assert_int_eq(fs_list(a, "documents", "link-out", 0, 0, NULL), -EXDEV);
        ck_assert_int_eq(fs_list(a, "documents", "hello.txt", 0, 0, NULL), -ENOTDIR);
        ck_assert_int_eq(fs_list(a, "documents", "nope", 0, 0, NULL), -ENOENT);
        dir_as(docs_dir, "private", 0, 0, 0700);
        ck_assert_int_eq(fs_list(a, "documents", "private", 0, 0, NULL), -EACCES);
        ck_assert_int_eq(fs_list(a, "documents", ".", 0, 257, NULL), -EINVAL);
        ck_assert_int_eq(fs_list(a, "documents", ".", (uint64_t)INT64_MAX + 1, 0, NULL), -EINVAL);
        ck_assert_int_eq(fs_list(a, "documents", "", 0, 0, NULL), -EINVAL);
        ck_assert_int_eq(fs_list(w, "documents", ".", 0, 0, NULL), -EACCES);
        ck_assert_int_eq(fs_list(a, "media", ".", 0, 0, NULL), -EPERM);
        ck_assert_int_eq(fs_list(a, "procfs", ".", 0, 0, NULL), -EPERM);
}
END_TEST

START_TEST(test_fs_stat)
{
        static const char *const ro[] = {"fs.read:documents", NULL};
        TestApp *a = app_new("org.t.files", "\"fs.read:documents\",\"fs.write:documents\"", ro);
        Cella__V1__FsStatReply st;
        char p[512];

        ck_assert_int_eq(fs_stat(a, "documents", "hello.txt", false, &st), 0);
        ck_assert_int_eq(st.type, T_REG);
        ck_assert_uint_eq(st.size_bytes, 5);
        ck_assert_uint_eq(st.mode, 0644);
        ck_assert_int_gt(st.mtime_ns, 0);
        ck_assert_int_eq(fs_stat(a, "documents", ".", false, &st), 0);
        ck_assert_int_eq(st.type, T_DIR);
        ck_assert_uint_eq(st.mode, 0755);
        snprintf(p, sizeof p, "%s/in", docs_dir);
        ck_assert_int_eq(symlink("hello.txt", p), 0);
        snprintf(p, sizeof p, "%s/out", docs_dir);
        ck_assert_int_eq(symlink("/etc/passwd", p), 0);
        ck_assert_int_eq(fs_stat(a, "documents", "in", false, &st), 0);
        ck_assert_int_eq(st.type, T_REG);
        ck_assert_int_eq(fs_stat(a, "documents", "in", true, &st), 0);
        ck_assert_int_eq(st.type, T_LNK);
        ck_assert_uint_eq(st.size_bytes, 9);
        /* The link itself may be described; where it leads is not. */
        ck_assert_int_eq(fs_stat(a, "documents", "out", true, &st), 0);
        ck_assert_int_eq(st.type, T_LNK);
        ck_assert_int_eq(fs_stat(a, "documents", "out", false, NULL), -EXDEV);
        ck_assert_int_eq(fs_stat(a, "documents", "..", false, NULL), -EXDEV);
        ck_assert_int_eq(fs_stat(a, "documents", "../docs/hello.txt", false, NULL), -EXDEV);
        ck_assert_int_eq(fs_stat(a, "documents", "nope", false, NULL), -ENOENT);
        dir_as(docs_dir, "private", 0, 0, 0700);
        file_as(docs_dir, "private/x", "x", 0, 0, 0644);
        ck_assert_int_eq(fs_stat(a, "documents", "private/x", false, NULL), -EACCES);
        ck_assert_int_eq(fs_stat(a, "procfs", "self", false, NULL), -EPERM); /* not requested */
}
END_TEST

START_TEST(test_fs_mkdir_rename_unlink)
{
        static const char *const ro[] = {"fs.read:documents", NULL};
        TestApp *a = app_new("org.t.files", RW_ALL_PERMS, rw_all),
                *r = app_new("org.t.reader", "\"fs.read:documents\",\"fs.write:documents\"", ro);
        char p[512], buf[64];
        struct stat st;
        json_t *rec;

        /* mkdir: the owner's, mode & ~umask. */
        ck_assert_int_eq(fs_mkdir(a, "documents", "a", 0777), 0);
        snprintf(p, sizeof p, "%s/a", docs_dir);
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_uint_eq(st.st_uid, OWNER_UID);
        ck_assert_uint_eq(st.st_gid, OWNER_GID);
        ck_assert_uint_eq(st.st_mode & 07777, 0755);
        ck_assert_int_eq(fs_mkdir(a, "documents", "a/b/", 0700), 0);
        ck_assert_int_eq(fs_mkdir(a, "documents", "a", 0700), -EEXIST);
        ck_assert_int_eq(fs_mkdir(a, "documents", "x/y", 0700), -ENOENT);
        ck_assert_int_eq(fs_mkdir(a, "documents", "../escaped", 0700), -EXDEV);
        ck_assert_int_eq(fs_mkdir(a, "documents", "a/../../escaped", 0700), -EXDEV);
        ck_assert_int_eq(fs_mkdir(a, "documents", "/tmp/escaped", 0700), -EXDEV);
        ck_assert_int_eq(fs_mkdir(a, "documents", "a/..", 0700), -EINVAL);
        ck_assert_int_eq(fs_mkdir(a, "documents", ".", 0700), -EINVAL);
        ck_assert_int_eq(fs_mkdir(a, "documents", "z", 01777), -EINVAL);
        ck_assert_int_eq(fs_mkdir(r, "documents", "z", 0700), -EACCES);
        snprintf(p, sizeof p, "%s/../escaped", docs_dir);
        ck_assert_int_eq(access(p, F_OK), -1);
        snprintf(p, sizeof p, "%s/up", docs_dir);
        ck_assert_int_eq(symlink("..", p), 0);
        ck_assert_int_eq(fs_mkdir(a, "documents", "up/escaped", 0700), -EXDEV);
        dir_as(docs_dir, "rootdir", 0, 0, 0755);
        ck_assert_int_eq(fs_mkdir(a, "documents", "rootdir/z", 0700), -EACCES);
        ck_assert_int_eq(fs_mkdir(a, "shared", "z", 0700), -EACCES);

        /* rename, within the root only. */
        write_file(docs_dir, "one", "1");
        write_file(docs_dir, "two", "2");
        ck_assert_int_eq(fs_rename(a, "documents", "one", "a/uno", 0), 0);
        ck_assert_int_eq(fs_rename(a, "documents", "a/uno", "two", FS_RENAME_NOREPLACE), -EEXIST);
        ck_assert_int_eq(fs_rename(a, "documents", "a/uno", "two", FS_RENAME_EXCHANGE), 0);
        file_text(docs_dir, "two", buf, sizeof buf);
        ck_assert_str_eq(buf, "1");
        ck_assert_int_eq(fs_rename(a, "documents", "two", "../two", 0), -EXDEV);
        ck_assert_int_eq(fs_rename(a, "documents", "two", "up/two", 0), -EXDEV);
        ck_assert_int_eq(fs_rename(a, "documents", "../docs/hello.txt", "h", 0), -EXDEV);
        ck_assert_int_eq(fs_rename(a, "documents", "two", "a/..", 0), -EINVAL);
        ck_assert_int_eq(fs_rename(a, "documents", "two", "x", 3), -EINVAL);
        ck_assert_int_eq(fs_rename(a, "documents", "two/", "x", 0), -ENOTDIR);
        ck_assert_int_eq(fs_rename(a, "documents", "a", "a/b/c", 0), -EINVAL);
        ck_assert_int_eq(fs_rename(a, "documents", "hello.txt", "rootdir/h", 0), -EACCES);
        ck_assert_uint_ge(audit_last("fs.rename", &rec), 1);
        ck_assert_str_eq(json_string_value(json_object_get(rec, "path")), "hello.txt");
        ck_assert_str_eq(json_string_value(json_object_get(rec, "new_path")), "rootdir/h");
        json_decref(rec);
        ck_assert_int_eq(fs_rename(r, "documents", "two", "three", 0), -EACCES);

        /* unlink: a file, a symlink itself, an empty directory. */
        ck_assert_int_eq(fs_unlink(a, "documents", "a"), -ENOTEMPTY);
        ck_assert_int_eq(fs_unlink(a, "documents", "two/"), -ENOTDIR);
        ck_assert_int_eq(fs_unlink(a, "documents", "two"), 0);
        ck_assert_int_eq(fs_unlink(a, "documents", "two"), -ENOENT);
        ck_assert_int_eq(fs_unlink(a, "documents", "up"), 0); /* the link, not ".." */
        ck_assert_int_eq(stat(docs_dir, &st), 0);
        ck_assert_int_eq(fs_unlink(a, "documents", "a/b/"), 0);
        ck_assert_int_eq(fs_unlink(a, "documents", "a/uno"), 0);
        ck_assert_int_eq(fs_unlink(a, "documents", "a"), 0);
        ck_assert_int_eq(fs_unlink(a, "documents", "."), -EINVAL);
        ck_assert_int_eq(fs_unlink(a, "documents", "../docs/hello.txt"), -EXDEV);
        file_as(docs_dir, "rootdir/keep", "k", 0, 0, 0666);
        ck_assert_int_eq(fs_unlink(a, "documents", "rootdir/keep"), -EACCES);
        ck_assert_int_eq(fs_unlink(r, "documents", "hello.txt"), -EACCES);
        snprintf(p, sizeof p, "%s/hello.txt", docs_dir);
        ck_assert_int_eq(access(p, F_OK), 0);
        ck_assert_uint_ge(audit_last("fs.unlink", &rec), 1);
        ck_assert_str_eq(json_string_value(json_object_get(rec, "decision")), "refused");
        json_decref(rec);
}
END_TEST

/* RESOLVE_NO_XDEV: a mount point inside a root (a bind mount of /etc here, in a
 * mount namespace of this test's own) is not crossed. */
/* Checks that fd lives on a mount that is nosuid, nodev and noexec, and read-only
 * exactly when ro, whose path is path beneath the root alone, and that a reopen of it
 * for writing through /proc/self/fd/N is EROFS when ro (this process is root: only
 * the mount can refuse it). */
static void assert_on_clone(int fd, bool ro, const char *path, const char *host_dir)
{
        char p[64], link[PATH_MAX] = {};
        struct statvfs sv;
        ssize_t n;
        int fd2;

        ck_assert_int_eq(fstatvfs(fd, &sv), 0);
        ck_assert(sv.f_flag & ST_NOSUID);
        ck_assert(sv.f_flag & ST_NODEV);
        ck_assert(sv.f_flag & ST_NOEXEC);
        ck_assert_int_eq(!!(sv.f_flag & ST_RDONLY), ro);
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        n = readlink(p, link, sizeof link - 1);
        ck_assert_int_gt(n, 0);
        ck_assert_str_eq(link, path);
        ck_assert_ptr_null(strstr(link, host_dir));
        fd2 = open(p, O_RDWR | O_CLOEXEC);
        if (ro) {
                ck_assert_int_eq(fd2, -1);
                ck_assert_int_eq(errno, EROFS);
        } else {
                ck_assert_int_ge(fd2, 0);
                close(fd2);
        }
}

/* The fd fs.open passes lives on a detached clone of the root with the grant's
 * limits, for a configured root and a default one, read-only and for writing. */
START_TEST(test_fs_open_fd_on_restricted_mount)
{
        static const char *const rw_music[] = {"fs.read:documents", "fs.write:documents",
                                               "fs.read:music", "fs.write:music", NULL};
        TestApp *a = app_new("org.t.files",
                             "\"fs.read:documents\",\"fs.write:documents\",\"fs.read:music\","
                             "\"fs.write:music\"",
                             rw_music);
        char music[512];
        struct stat st;
        int fd;

        dir_as(docs_dir, "sub", OWNER_UID, OWNER_GID, 0755);
        file_as(docs_dir, "sub/world.txt", "anyone", OWNER_UID, OWNER_GID, 0666);
        ck_assert_int_eq(fs_open(a, "documents", "sub/world.txt", R, 0, &fd, NULL), 0);
        assert_on_clone(fd, true, "/sub/world.txt", docs_dir);
        close(fd);
        ck_assert_int_eq(fs_open(a, "documents", "sub/world.txt", R | W, 0, &fd, NULL), 0);
        assert_on_clone(fd, false, "/sub/world.txt", docs_dir);
        ck_assert_int_eq(write(fd, "w", 1), 1);
        close(fd);
        /* Created beneath the writable clone: still the root owner's file. */
        ck_assert_int_eq(fs_open(a, "documents", "made.txt", W | CR | EX, 0644, &fd, NULL), 0);
        assert_on_clone(fd, false, "/made.txt", docs_dir);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_uid, OWNER_UID);
        close(fd);

        /* A default root (<state_dir>/roots/music), made on first use. */
        ck_assert_int_eq(fs_open(a, "music", "song", W | CR | EX, 0666, &fd, NULL), 0);
        close(fd);
        ck_assert_int_eq(fs_open(a, "music", "song", R, 0, &fd, NULL), 0);
        snprintf(music, sizeof music, "%s/roots/music", state_dir);
        assert_on_clone(fd, true, "/song", music);
        close(fd);
        /* The other calls keep working beneath the clones. */
        ck_assert_int_eq(fs_mkdir(a, "music", "album", 0755), 0);
        ck_assert_int_eq(fs_rename(a, "music", "song", "album/song", 0), 0);
        ck_assert_int_eq(fs_stat(a, "music", "album/song", false, NULL), 0);
        ck_assert_int_eq(fs_unlink(a, "music", "album/song"), 0);
        ck_assert_int_eq(fs_unlink(a, "music", "album"), 0);
}
END_TEST

START_TEST(test_fs_no_mount_crossing)
{
        TestApp *a = app_new("org.t.files", RW_ALL_PERMS, rw_all);
        char p[512];

        /* Before the kernel's worker thread exists: unshare(CLONE_NEWNS) needs a
         * single-threaded process. */
        ck_assert_int_eq(unshare(CLONE_NEWNS), 0); /* root, as the whole suite (chown) */
        ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        dir_as(docs_dir, "mnt", OWNER_UID, OWNER_GID, 0755);
        file_as(docs_dir, "mnt/under", "covered", OWNER_UID, OWNER_GID, 0644);
        /* The root's clones are made now, before the mount below: they must be made
         * again, or "mnt" would show the folder the mount covers. */
        ck_assert_int_eq(fs_open(a, "documents", "hello.txt", R, 0, NULL, NULL), 0);
        ck_assert_int_eq(fs_open(a, "documents", "mnt/under", R | W, 0, NULL, NULL), 0);
        ck_assert_int_eq(fs_stat(a, "documents", "mnt/under", false, NULL), 0);
        snprintf(p, sizeof p, "%s/mnt", docs_dir);
        ck_assert_int_eq(mount("/etc", p, NULL, MS_BIND, NULL), 0);
        ck_assert_int_eq(fs_open(a, "documents", "mnt/passwd", R, 0, NULL, NULL), -EXDEV);
        ck_assert_int_eq(fs_open(a, "documents", "mnt/under", R, 0, NULL, NULL), -EXDEV);
        ck_assert_int_eq(fs_open(a, "documents", "mnt/under", W, 0, NULL, NULL), -EXDEV);
        ck_assert_int_eq(fs_stat(a, "documents", "mnt/under", false, NULL), -EXDEV);
        ck_assert_int_eq(fs_open(a, "documents", "mnt/new", W | CR, 0644, NULL, NULL), -EXDEV);
        ck_assert_int_eq(fs_list(a, "documents", "mnt", 0, 0, NULL), -EXDEV);
        ck_assert_int_eq(fs_stat(a, "documents", "mnt/passwd", false, NULL), -EXDEV);
        ck_assert_int_eq(fs_mkdir(a, "documents", "mnt/x", 0755), -EXDEV);
        ck_assert_int_eq(fs_unlink(a, "documents", "mnt"), -EBUSY);
        ck_assert_int_eq(fs_open(a, "documents", "hello.txt", R, 0, NULL, NULL), 0);
        ck_assert_int_eq(umount2(p, MNT_DETACH), 0);
}
END_TEST

#ifndef CELLA_SOURCE_ROOT
#error "CELLA_SOURCE_ROOT must name the source tree (tests/unit/meson.build)"
#endif

static const char *class_name(WireClass c)
{
        return c == WIRE_CLASS_CHEAP       ? "cheap"
               : c == WIRE_CLASS_COSTLY    ? "costly"
               : c == WIRE_CLASS_PROMPTING ? "prompting"
                                           : NULL;
}

/* True if the catalogue name of right ("fs.read:documents") is one of rights, the
 * opcode table's space-separated list. */
static bool right_listed(const char *right, const char *rights)
{
        size_t len = strcspn(right, ":");

        for (const char *p = rights; *p;) {
                size_t n = strcspn(p, " ");

                if (n == len && memcmp(p, right, len) == 0)
                        return true;
                p += n;
                p += strspn(p, " ");
        }
        return false;
}

/* The one opcode table (src/wire/wire.c) against what reads it: every request has a
 * name, a class, rights from the catalogue, a handler in src/broker/calls whose right
 * (for a default request) is among those rights, and its row in docs/protocol.md;
 * every event has a name, its body, no handler and its row. */
START_TEST(test_opcode_table)
{
        _cleanup_free_ char *doc = NULL;
        const WireOp *ops;
        size_t n, size, requests = 0, events = 0;
        int r;

        r = read_file_at(AT_FDCWD, CELLA_SOURCE_ROOT "/docs/protocol.md", 1 << 20, &doc, &size);
        ck_assert_msg(r == 0, "read docs/protocol.md: %s", strerror(-r));
        ops = wire_ops(&n);
        ck_assert_uint_gt(n, 0);
        for (size_t i = 0; i < n; i++) {
                const WireOp *op = &ops[i];
                const BrokerCallDef *def = broker_call_def(op->opcode);
                char row[256], rights[128] = "";
                size_t o = 0;

                ck_assert_msg(op->name && op->name[0], "opcode 0x%04x has no name", op->opcode);
                ck_assert_ptr_eq(wire_op_lookup(op->opcode), op);
                for (size_t j = 0; j < i; j++)
                        ck_assert_msg(strcmp(ops[j].name, op->name) != 0, "%s twice", op->name);
                if (!op->request) {
                        events++;
                        ck_assert_msg(op->event && !op->reply, "%s: an event has one body",
                                      op->name);
                        ck_assert_msg(op->opcode >= 0x8000, "%s: events are 0x8000 and up",
                                      op->name);
                        ck_assert_msg(op->cls == WIRE_CLASS_NONE && !op->rights,
                                      "%s: an event has no class and no rights", op->name);
                        ck_assert_msg(!def, "%s: an event has no handler", op->name);
                        snprintf(row, sizeof row, "| `0x%04x` | %s |", op->opcode, op->name);
                        ck_assert_msg(strstr(doc, row), "docs/protocol.md has no row %s", row);
                        continue;
                }
                requests++;
                ck_assert_msg(op->reply && !op->event, "%s: a request has a reply body", op->name);
                ck_assert_msg(op->opcode >= 0x0100 && op->opcode < 0x8000, "%s: 0x%04x", op->name,
                              op->opcode);
                ck_assert_msg(class_name(op->cls), "%s has no rate-limit class", op->name);
                ck_assert_msg(op->rights, "%s: no rights list (\"\" for none)", op->name);
                ck_assert_msg(def && def->handle, "%s has no handler in src/broker/calls",
                              op->name);
                for (const char *p = op->rights; *p;) {
                        size_t len = strcspn(p, " ");

                        ck_assert_msg(capability_lookup(p, len),
                                      "%s: right '%.*s' is not in the "
                                      "catalogue",
                                      op->name, (int)len, p);
                        o += (size_t)snprintf(rights + o, sizeof rights - o, "%s`%.*s`",
                                              o ? ", " : "", (int)len, p);
                        ck_assert_uint_lt(o, sizeof rights);
                        p += len;
                        p += strspn(p, " ");
                }
                snprintf(row, sizeof row, "| `0x%04x` | %s | %s | %s |", op->opcode, op->name,
                         class_name(op->cls), o ? rights : "—");
                ck_assert_msg(strstr(doc, row), "docs/protocol.md has no row %s", row);

                /* The handler's right for a request of default fields: either none
                 * (or a refusal of the fields), or a right the table lists. */
                if (def->right_of) {
                        _cleanup_free_ void *req = calloc(1, op->request->sizeof_message);
                        char buf[CAPABILITY_RIGHT_MAX];
                        const char *right;
                        int err = 0;

                        ck_assert_ptr_nonnull(req);
                        protobuf_c_message_init(op->request, req);
                        right = def->right_of(req, buf, sizeof buf, &err);
                        ck_assert_msg(!right || right_listed(right, op->rights),
                                      "%s checks '%s', not in its rights \"%s\"", op->name, right,
                                      op->rights);
                }
        }
        ck_assert_uint_gt(requests, 0);
        ck_assert_uint_gt(events, 0);
}
END_TEST

/* A value for a request's string field that its handler's checks accept, by the
 * field's name (proto/cella.proto). */
static const char *filler_string(const char *field)
{
        static const struct {
                const char *field, *value;
        } values[] = {
                {"root", "documents"},
                {"path", "a"},
                {"old_path", "a"},
                {"new_path", "b"},
                {"app_id", "org.test.peer"},
                {"topic", "org.test.peer.news"},
                {"pattern", "org.test.**"},
                {"permission", "notify"},
                {"title", "t"},
                {"content_type", "text/plain"},
                /* ipc (calls/ipc.c) */
                {"name", "org.test.peer.obj"},
                {"peer", "org.test.peer"},
                {"to", "org.test.peer"},
        };

        for (size_t i = 0; i < ELEMENTSOF(values); i++)
                if (strcmp(values[i].field, field) == 0)
                        return values[i].value;
        return "x";
}

/* Fills m's fields (and one element of a repeated message field, allocated into
 * *subs, at most max_subs) with values its handler accepts: strings by
 * filler_string(), numbers by name, fs flags as given. */
static void fill_request(ProtobufCMessage *m, uint32_t fs_flags, void **subs, size_t max_subs,
                         size_t *n_subs)
{
        const ProtobufCMessageDescriptor *d = m->descriptor;

        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *fd = &d->fields[i];
                char *at = (char *)m + fd->offset;

                if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
                        ProtobufCMessage **one;

                        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
                                continue;
                        ck_assert_uint_lt(*n_subs + 1, max_subs);
                        one = calloc(1, sizeof *one);
                        ck_assert_ptr_nonnull(one);
                        one[0] = calloc(1, ((const ProtobufCMessageDescriptor *)fd->descriptor)
                                                   ->sizeof_message);
                        ck_assert_ptr_nonnull(one[0]);
                        protobuf_c_message_init(fd->descriptor, one[0]);
                        subs[(*n_subs)++] = one;
                        subs[(*n_subs)++] = one[0];
                        fill_request(one[0], fs_flags, subs, max_subs, n_subs);
                        *(size_t *)((char *)m + fd->quantifier_offset) = 1;
                        *(ProtobufCMessage ***)at = one;
                        continue;
                }
                switch (fd->type) {
                case PROTOBUF_C_TYPE_STRING:
                        *(const char **)at = filler_string(fd->name);
                        break;
                case PROTOBUF_C_TYPE_UINT32:
                case PROTOBUF_C_TYPE_INT32:
                        *(uint32_t *)at = d == &cella__v1__fs_open_request__descriptor &&
                                                          strcmp(fd->name, "flags") == 0
                                                  ? fs_flags
                                          : strcmp(fd->name, "signal") == 0 ? 15
                                          : strcmp(fd->name, "pid") == 0    ? 1
                                          : strcmp(fd->name, "modes") == 0  ? 1 /* ipc READ */
                                                                            : 0;
                        break;
                case PROTOBUF_C_TYPE_ENUM:
                        /* KeystoreKind: ed25519; IpcKind: IPC_KIND_PIPE, which takes modes
                         * READ (both 1; 0 is no kind) */
                        *(int *)at = strcmp(fd->name, "kind") == 0 ? 1 : 0;
                        break;
                case PROTOBUF_C_TYPE_BYTES: {
                        /* keystore: a key and a signature of their sizes; keystore.seal
                         * takes a name or a public key, and the filler gives the name.
                         * An X25519 public key (channel.open, .accept) is 32 bytes, not
                         * all zero. */
                        static uint8_t zeros[64] = {9};
                        size_t len =
                                strcmp(fd->name, "signature") == 0 ? 64
                                : strcmp(fd->name, "public_key") == 0 &&
                                                d != &cella__v1__keystore_seal_request__descriptor
                                        ? 32
                                        : 0;

                        *(ProtobufCBinaryData *)at =
                                (ProtobufCBinaryData){.data = zeros, .len = len};
                        break;
                }
                case PROTOBUF_C_TYPE_UINT64:
                        *(uint64_t *)at = strcmp(fd->name, "initial_ms") == 0    ? 1000
                                          : strcmp(fd->name, "interval_ms") == 0 ? 0
                                                                                 : 1;
                        break;
                default:
                        break;
                }
        }
}

/*
 * The rights the opcode table lists for a request are the rights its handler checks
 * for a valid request, both ways: a request with every field filled in as its
 * handler accepts (fs.open for reading and for writing) asks for a right the table
 * lists, every listed right is asked for by one of them, and a request the table
 * lists no right for asks for none. test_opcode_table sees only default fields,
 * which most handlers refuse before naming a right.
 */
START_TEST(test_opcode_rights_match_handlers)
{
        static const uint32_t flag_sets[] = {
                CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_READ,
                CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_READ |
                        CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_WRITE,
        };
        const WireOp *ops;
        size_t n, named = 0;

        ops = wire_ops(&n);
        for (size_t i = 0; i < n; i++) {
                const WireOp *op = &ops[i];
                const BrokerCallDef *def = broker_call_def(op->opcode);
                char seen[128] = " ";

                if (!op->request)
                        continue;
                ck_assert_ptr_nonnull(def);
                for (size_t f = 0; f < ELEMENTSOF(flag_sets); f++) {
                        void *subs[8];
                        size_t n_subs = 0;
                        _cleanup_free_ void *req = calloc(1, op->request->sizeof_message);
                        char buf[CAPABILITY_RIGHT_MAX];
                        const char *right = NULL;
                        int err = 0;

                        ck_assert_ptr_nonnull(req);
                        protobuf_c_message_init(op->request, req);
                        fill_request(req, flag_sets[f], subs, ELEMENTSOF(subs), &n_subs);
                        if (def->right_of)
                                right = def->right_of(req, buf, sizeof buf, &err);
                        ck_assert_msg(err == 0, "%s: a valid request is refused: %s", op->name,
                                      strerror(-err));
                        if (!op->rights[0])
                                ck_assert_msg(!right, "%s checks '%s', but the table lists none",
                                              op->name, right);
                        else if (!right && (strcmp(op->name, "bus.publish_batch") == 0 ||
                                            strcmp(op->name, "net.connect") == 0 ||
                                            strcmp(op->name, "ipc.accept") == 0)) {
                                /* net.connect's handler decides its right itself: an
                                 * address's class comes before it (calls/net.c).
                                 * ipc.accept's too: the kind and name of what the
                                 * token names (calls/ipc.c). */
                                /* Its handler checks bus.publish per topic
                                 * (test_bus_publish_batch_rights). */
                                snprintf(seen, sizeof seen, " %s ", op->rights);
                        } else {
                                ck_assert_msg(right, "%s checks no right, the table lists \"%s\"",
                                              op->name, op->rights);
                                ck_assert_msg(right_listed(right, op->rights),
                                              "%s checks '%s', not in its rights \"%s\"", op->name,
                                              right, op->rights);
                                strncat(seen, right, strcspn(right, ":"));
                                strcat(seen, " ");
                                named++;
                                /* The second right a request may need (fs.open's
                                 * fs.read with fs.write, ipc.pipe_create's
                                 * bus.send:<peer>): listed too. */
                                if (def->also_right_of) {
                                        char buf2[CAPABILITY_RIGHT_MAX];
                                        const char *also =
                                                def->also_right_of(req, buf2, sizeof buf2);

                                        ck_assert_msg(!also || right_listed(also, op->rights),
                                                      "%s checks '%s', not in its rights \"%s\"",
                                                      op->name, also, op->rights);
                                        if (also) {
                                                strncat(seen, also, strcspn(also, ":"));
                                                strcat(seen, " ");
                                        }
                                }
                        }
                        for (size_t k = 0; k < n_subs; k++)
                                free(subs[k]);
                }
                for (const char *p = op->rights; *p;) {
                        size_t len = strcspn(p, " ");
                        char word[40];

                        snprintf(word, sizeof word, " %.*s ", (int)len, p);
                        ck_assert_msg(strstr(seen, word), "%s lists '%.*s', which it never checks",
                                      op->name, (int)len, p);
                        p += len;
                        p += strspn(p, " ");
                }
        }
        ck_assert_uint_ge(named, 10);
}
END_TEST

/* ---- channel.* and signed bus messages (calls/channel.c) ---- */

static uint64_t chan_open(TestApp *a, const char *to, uint8_t key_byte, uint32_t timeout_ms)
{
        Cella__V1__ChannelOpenRequest req = CELLA__V1__CHANNEL_OPEN_REQUEST__INIT;
        uint8_t key[32];

        memset(key, key_byte, sizeof key);
        req.app_id = (char *)to;
        req.public_key = (ProtobufCBinaryData){.len = sizeof key, .data = key};
        req.purpose = (char *)"test";
        req.timeout_ms = timeout_ms;
        return send_request(a, CELLA__V1__OPCODE__OPCODE_CHANNEL_OPEN, &req.base);
}

/* The channel request b got: checks it, returns its token. */
static uint64_t chan_expect_request(TestApp *b, const char *from, uint8_t key_byte)
{
        Frame *f = take(b, 0, CELLA__V1__OPCODE__OPCODE_EVENT_CHANNEL_REQUEST, WAIT_MS);
        const Cella__V1__ChannelRequestEvent *m;
        uint64_t token;

        ck_assert_msg(f != NULL, "%s: no channel request", b->id);
        m = (const void *)f->msg;
        ck_assert_str_eq(m->app_id, from);
        ck_assert_str_eq(m->purpose, "test");
        ck_assert_uint_eq(m->public_key.len, 32);
        ck_assert_uint_eq(m->public_key.data[0], key_byte);
        ck_assert_uint_eq(m->public_key.data[31], key_byte);
        token = m->token;
        ck_assert_uint_gt(token, 0);
        frame_free(f);
        return token;
}

static int chan_cancelled(TestApp *b, uint64_t token)
{
        Frame *f = take(b, 0, CELLA__V1__OPCODE__OPCODE_EVENT_CHANNEL_CANCELLED, WAIT_MS);
        int e;

        ck_assert_msg(f != NULL, "%s: no channel cancelled event", b->id);
        ck_assert_uint_eq(((Cella__V1__ChannelCancelledEvent *)(void *)f->msg)->token, token);
        e = ((Cella__V1__ChannelCancelledEvent *)(void *)f->msg)->errnum;
        frame_free(f);
        return -e;
}

static uint64_t chan_accept_send(TestApp *b, uint64_t token, uint8_t key_byte)
{
        Cella__V1__ChannelAcceptRequest req = CELLA__V1__CHANNEL_ACCEPT_REQUEST__INIT;
        uint8_t key[32];

        memset(key, key_byte, sizeof key);
        req.token = token;
        req.public_key = (ProtobufCBinaryData){.len = sizeof key, .data = key};
        return send_request(b, CELLA__V1__OPCODE__OPCODE_CHANNEL_ACCEPT, &req.base);
}

static int chan_refuse(TestApp *b, uint64_t token, int errnum)
{
        Cella__V1__ChannelRefuseRequest req = CELLA__V1__CHANNEL_REFUSE_REQUEST__INIT;

        req.token = token;
        req.errnum = errnum;
        return call(b, CELLA__V1__OPCODE__OPCODE_CHANNEL_REFUSE, &req.base, NULL);
}

START_TEST(test_channel_open_accept)
{
        TestApp *a = app_new("org.t.a", "\"bus.send:org.t.b\"", NULL),
                *b = app_new("org.t.b", "\"timer\"", NULL),
                *c = app_new("org.t.c", "\"timer\"", NULL);
        const Cella__V1__ChannelOpenReply *o;
        const Cella__V1__ChannelAcceptReply *r;
        Frame *fa = NULL, *fb = NULL;
        uint64_t id, token;
        char buf[8];

        id = chan_open(a, "org.t.b", 0xaa, 5000);
        token = chan_expect_request(b, "org.t.a", 0xaa);
        /* Still waiting; another app cannot take b's request. */
        ck_assert_ptr_null(take(a, id, 0, 20));
        ck_assert_int_eq(wait_reply(c, chan_accept_send(c, token, 0xcc), NULL), -ENOENT);
        ck_assert_int_eq(wait_reply(b, chan_accept_send(b, token, 0xbb), &fb), 0);
        ck_assert_int_eq(wait_reply(a, id, &fa), 0);
        o = (const void *)fa->msg;
        r = (const void *)fb->msg;
        /* Each side gets the other's id (the kernel's) and key (as that side sent it). */
        ck_assert_str_eq(o->app_id, "org.t.b");
        ck_assert_uint_eq(o->public_key.len, 32);
        ck_assert_uint_eq(o->public_key.data[5], 0xbb);
        ck_assert_uint_eq(o->token, token);
        ck_assert_str_eq(r->app_id, "org.t.a");
        ck_assert_uint_eq(r->public_key.data[5], 0xaa);
        /* And one end each of one SOCK_SEQPACKET socketpair. */
        ck_assert_int_ge(fa->fd, 0);
        ck_assert_int_ge(fb->fd, 0);
        ck_assert_int_eq(send(fa->fd, "ping", 4, 0), 4);
        ck_assert_int_eq(recv(fb->fd, buf, sizeof buf, 0), 4);
        ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
        frame_free(fa);
        frame_free(fb);
        /* Answered once: the token is dead. */
        ck_assert_int_eq(wait_reply(b, chan_accept_send(b, token, 0xbb), NULL), -ENOENT);
        ck_assert_int_eq(chan_refuse(b, token, 0), -ENOENT);
}
END_TEST

START_TEST(test_channel_refused)
{
        TestApp *a = app_new("org.t.a", "\"bus.send:org.t.b\"", NULL),
                *b = app_new("org.t.b", "\"timer\"", NULL);
        uint64_t id, token;

        /* Without the right; to itself; not running; a key of the wrong size. */
        ck_assert_int_eq(wait_reply(b, chan_open(b, "org.t.a", 1, 0), NULL), -EPERM);
        ck_assert_int_eq(wait_reply(a, chan_open(a, "org.t.gone", 1, 0), NULL), -EPERM);
        {
                Cella__V1__ChannelOpenRequest req = CELLA__V1__CHANNEL_OPEN_REQUEST__INIT;
                uint8_t key[31] = {1};

                req.app_id = (char *)"org.t.b";
                req.public_key = (ProtobufCBinaryData){.len = sizeof key, .data = key};
                ck_assert_int_eq(call(a, CELLA__V1__OPCODE__OPCODE_CHANNEL_OPEN, &req.base, NULL),
                                 -EINVAL);
                req.public_key.len = 0;
                ck_assert_int_eq(call(a, CELLA__V1__OPCODE__OPCODE_CHANNEL_OPEN, &req.base, NULL),
                                 -EINVAL);
        }
        /* Refused by the peer, with its errno or ECONNREFUSED. */
        id = chan_open(a, "org.t.b", 1, 5000);
        token = chan_expect_request(b, "org.t.a", 1);
        ck_assert_int_eq(chan_refuse(b, token, 0), 0);
        ck_assert_int_eq(wait_reply(a, id, NULL), -ECONNREFUSED);
        id = chan_open(a, "org.t.b", 1, 5000);
        token = chan_expect_request(b, "org.t.a", 1);
        ck_assert_int_eq(chan_refuse(b, token, EPERM), 0);
        ck_assert_int_eq(wait_reply(a, id, NULL), -EPERM);
        ck_assert_int_eq(chan_refuse(b, token, -1), -EINVAL);
        /* Expired: both sides told, the late accept finds nothing. */
        id = chan_open(a, "org.t.b", 1, 30);
        token = chan_expect_request(b, "org.t.a", 1);
        ck_assert_int_eq(wait_reply(a, id, NULL), -ETIMEDOUT);
        ck_assert_int_eq(chan_cancelled(b, token), -ETIMEDOUT);
        ck_assert_int_eq(wait_reply(b, chan_accept_send(b, token, 2), NULL), -ENOENT);
}
END_TEST

/* Either side going, a cancel, a revocation: nothing stays pending. */
START_TEST(test_channel_crash_cancel_revoke)
{
        TestApp *a = app_new("org.t.a", "\"bus.send:org.t.*\"", NULL),
                *b = app_new("org.t.b", "\"timer\"", NULL);
        uint64_t id, token;

        /* The peer exits before answering: ECONNRESET at once. */
        id = chan_open(a, "org.t.b", 1, 60000);
        chan_expect_request(b, "org.t.a", 1);
        app_free(b);
        ck_assert_int_eq(wait_reply(a, id, NULL), -ECONNRESET);
        /* The opener cancels its call: the peer is told, the token is dead. */
        b = app_new("org.t.b2", "\"timer\"", NULL);
        id = chan_open(a, "org.t.b2", 1, 60000);
        token = chan_expect_request(b, "org.t.a", 1);
        ck_assert_int_eq(
                channel_send(a->fd,
                             &(ChannelFrame){.opcode = CELLA__V1__OPCODE__OPCODE_CHANNEL_OPEN,
                                             .flags = CHANNEL_FLAG_CANCEL,
                                             .request_id = id},
                             NULL, 0, 0),
                0);
        ck_assert_int_eq(chan_cancelled(b, token), -ECANCELED);
        ck_assert_int_eq(wait_reply(b, chan_accept_send(b, token, 2), NULL), -ENOENT);
        /* The opener exits: the same. */
        chan_open(a, "org.t.b2", 1, 60000);
        token = chan_expect_request(b, "org.t.a", 1);
        app_free(a);
        ck_assert_int_eq(chan_cancelled(b, token), -ECANCELED);
        ck_assert_int_eq(wait_reply(b, chan_accept_send(b, token, 2), NULL), -ENOENT);
        /* The opener's bus.send is revoked while it waits: EACCES, the peer told. */
        a = app_new("org.t.a3", "\"bus.send:org.t.b2\"", NULL);
        id = chan_open(a, "org.t.b2", 1, 60000);
        token = chan_expect_request(b, "org.t.a3", 1);
        ck_assert_int_ge(grants_revoke(grants, a->id, "bus.send:org.t.b2", NULL), 1);
        ck_assert_int_ge(broker_grants_changed(broker, a->id), 1);
        ck_assert_int_eq(wait_reply(a, id, NULL), -EACCES);
        ck_assert_int_eq(chan_cancelled(b, token), -EACCES);
        ck_assert_int_eq(wait_reply(b, chan_accept_send(b, token, 2), NULL), -ENOENT);
}
END_TEST

START_TEST(test_channel_pending_bound)
{
        TestApp *a = app_new("org.t.a", "\"bus.send:org.t.b\"", NULL),
                *b = app_new("org.t.b", "\"timer\"", NULL);
        uint64_t ids[16], tokens[16];
        Frame *f;

        for (unsigned i = 0; i < ELEMENTSOF(ids); i++) {
                ids[i] = chan_open(a, "org.t.b", 1, 60000);
                tokens[i] = chan_expect_request(b, "org.t.a", 1);
        }
        ck_assert_int_eq(wait_reply(a, chan_open(a, "org.t.b", 1, 60000), NULL), -EBUSY);
        /* One answered: room for one more. */
        ck_assert_int_eq(chan_refuse(b, tokens[0], 0), 0);
        ck_assert_int_eq(wait_reply(a, ids[0], NULL), -ECONNREFUSED);
        ids[0] = chan_open(a, "org.t.b", 1, 60000);
        tokens[0] = chan_expect_request(b, "org.t.a", 1);
        f = take(a, ids[0], 0, 20);
        ck_assert_ptr_null(f);
        for (unsigned i = 0; i < ELEMENTSOF(ids); i++)
                ck_assert_int_eq(chan_refuse(b, tokens[i], 0), 0);
}
END_TEST

/* Checks the signature of the bus message event m with key, as a receiver would
 * (src/wire/bussig.h): 0, -ENOMSG unsigned, -EBADMSG. */
static int verify_event(const uint8_t key[32], const Cella__V1__BusMessageEvent *m)
{
        const Cella__V1__BusSignature *s = m->signature;
        bool direct = m->subscription_id == 0;
        crypto_sign_state st;

        if (!s)
                return -ENOMSG;
        if (s->signature.len != 64)
                return -EBADMSG;
        bussig_feed(&st, direct ? BUSSIG_KIND_DIRECT : BUSSIG_KIND_TOPIC, m->sender,
                    direct ? s->target : m->topic, m->content_type, m->data.data, m->data.len,
                    s->timestamp_ns, s->counter);
        return crypto_sign_final_verify(&st, s->signature.data, key) == 0 ? 0 : -EBADMSG;
}

START_TEST(test_bus_signed_messages)
{
        TestApp *a = app_new("org.t.a", "\"bus.publish:org.t.a.news\", \"bus.send:org.t.b\"", NULL),
                *b = app_new("org.t.b", "\"bus.subscribe:org.t.a.news\"", NULL);
        Cella__V1__ChannelKernelKeyRequest kreq = CELLA__V1__CHANNEL_KERNEL_KEY_REQUEST__INIT;
        Cella__V1__BusPublishRequest pub = CELLA__V1__BUS_PUBLISH_REQUEST__INIT;
        Cella__V1__BusSendRequest snd = CELLA__V1__BUS_SEND_REQUEST__INIT;
        Cella__V1__BusMessageEvent *m;
        uint64_t sub, first;
        uint8_t key[32];
        Frame *f;

        ck_assert_int_eq(call(a, CELLA__V1__OPCODE__OPCODE_CHANNEL_KERNEL_KEY, &kreq.base, &f), 0);
        ck_assert_uint_eq(((Cella__V1__ChannelKernelKeyReply *)(void *)f->msg)->public_key.len, 32);
        memcpy(key, ((Cella__V1__ChannelKernelKeyReply *)(void *)f->msg)->public_key.data, 32);
        frame_free(f);
        ck_assert_int_eq(subscribe(b, "org.t.a.news", &sub), 0);
        pub.topic = (char *)"org.t.a.news";
        pub.data = (ProtobufCBinaryData){.len = 5, .data = (uint8_t *)"hello"};
        pub.content_type = (char *)"text/plain";
        pub.sign = true;
        ck_assert_int_eq(call(a, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH, &pub.base, NULL), 0);
        f = expect_message(b, "org.t.a.news", "org.t.a", "hello");
        m = (void *)f->msg;
        ck_assert_ptr_nonnull(m->signature);
        ck_assert_int_eq(verify_event(key, m), 0);
        ck_assert_str_eq(m->signature->target, "");
        first = m->signature->counter;
        /* Altered data, an altered counter: fail. */
        m->data.data[0] ^= 1;
        ck_assert_int_eq(verify_event(key, m), -EBADMSG);
        m->data.data[0] ^= 1;
        m->signature->counter++;
        ck_assert_int_eq(verify_event(key, m), -EBADMSG);
        frame_free(f);
        /* Direct, signed: the target is part of it. */
        snd.app_id = (char *)"org.t.b";
        snd.data = (ProtobufCBinaryData){.len = 2, .data = (uint8_t *)"hi"};
        snd.content_type = (char *)"";
        snd.sign = true;
        ck_assert_int_eq(call(a, CELLA__V1__OPCODE__OPCODE_BUS_SEND, &snd.base, NULL), 0);
        f = expect_message(b, "", "org.t.a", "hi");
        m = (void *)f->msg;
        ck_assert_int_eq(verify_event(key, m), 0);
        ck_assert_str_eq(m->signature->target, "org.t.b");
        ck_assert_uint_gt(m->signature->counter, first);
        /* Passed off as sent to someone else, or as published: fails. */
        {
                char *target = m->signature->target;

                m->signature->target = (char *)"org.t.c";
                ck_assert_int_eq(verify_event(key, m), -EBADMSG);
                m->signature->target = target;
                m->subscription_id = 1;
                ck_assert_int_eq(verify_event(key, m), -EBADMSG);
        }
        frame_free(f);
        /* Unsigned: no signature in the event. */
        snd.sign = false;
        ck_assert_int_eq(call(a, CELLA__V1__OPCODE__OPCODE_BUS_SEND, &snd.base, NULL), 0);
        f = expect_message(b, "", "org.t.a", "hi");
        ck_assert_ptr_null(((Cella__V1__BusMessageEvent *)(void *)f->msg)->signature);
        frame_free(f);
        /* The key is the state dir's kernel-signing.key, 0600. */
        {
                char path[512];
                struct stat st;

                snprintf(path, sizeof path, "%s/kernel-signing.key", state_dir);
                ck_assert_int_eq(lstat(path, &st), 0);
                ck_assert(S_ISREG(st.st_mode));
                ck_assert_uint_eq(st.st_mode & 07777, 0600);
                ck_assert_int_eq(st.st_size, 64);
        }
}
END_TEST

/* Signing is costly: never in a batch, and at the costly calls' rate. */
START_TEST(test_bus_signing_bounds)
{
        TestApp *a = app_new("org.t.a", "\"bus.publish:org.t.a.news\"", NULL);
        Cella__V1__BusPublishBatchRequest batch = CELLA__V1__BUS_PUBLISH_BATCH_REQUEST__INIT;
        Cella__V1__BusPublishRequest pub = CELLA__V1__BUS_PUBLISH_REQUEST__INIT, *msgs[1] = {&pub};
        unsigned ok = 0, again = 0;

        pub.topic = (char *)"org.t.a.news";
        pub.content_type = (char *)"";
        pub.sign = true;
        batch.n_messages = 1;
        batch.messages = msgs;
        ck_assert_int_eq(call(a, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH_BATCH, &batch.base, NULL),
                         -EINVAL);
        /* 20 rounds of 60 calls in flight: far past the burst of 200 and what 2000 a
         * second refill meanwhile, unless a round took 25 ms. */
        for (unsigned round = 0; round < 20; round++) {
                uint64_t ids[60];

                for (unsigned i = 0; i < ELEMENTSOF(ids); i++)
                        ids[i] = send_request(a, CELLA__V1__OPCODE__OPCODE_BUS_PUBLISH, &pub.base);
                for (unsigned i = 0; i < ELEMENTSOF(ids); i++) {
                        int r = wait_reply(a, ids[i], NULL);

                        ck_assert_msg(r == 0 || r == -EAGAIN, "signed publish: %d", r);
                        ok += r == 0;
                        again += r == -EAGAIN;
                }
        }
        ck_assert_uint_ge(ok, BROKER_BURST_COSTLY_DEFAULT);
        ck_assert_uint_gt(again, 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("broker-calls");
        TCase *fs = tcase_create("fs"), *timer = tcase_create("timer"), *bs = tcase_create("bus"),
              *fsroot = tcase_create("fsroot"), *table = tcase_create("table");
        SRunner *sr;
        int failed;

        tcase_add_test(table, test_opcode_table);
        tcase_add_test(table, test_opcode_rights_match_handlers);
        suite_add_tcase(s, table);

        tcase_add_checked_fixture(fs, setup, teardown);
        tcase_set_timeout(fs, 60);
        tcase_add_test(fs, test_fs_open_read_write);
        tcase_add_test(fs, test_fs_open_refused);
        tcase_add_test(fs, test_fs_open_path_bounds);
        tcase_add_test(fs, test_fs_open_escapes);
        tcase_add_test(fs, test_fs_open_default_root);
        tcase_add_test(fs, test_fs_usage);
        tcase_add_test(fs, test_fs_usage_one_walk);
        suite_add_tcase(s, fs);

        tcase_add_checked_fixture(timer, setup, teardown);
        TCase *ks = tcase_create("keystore");
        tcase_add_checked_fixture(ks, setup, teardown);
        tcase_set_timeout(ks, 60);
        tcase_add_test(ks, test_keystore_loop_and_worker);
        tcase_add_test(ks, test_keystore_worker_app_gone);
        suite_add_tcase(s, ks);
        /* net.connect and broker_net_connect(): this process's 127.0.0.1 only. */
        TCase *net = tcase_create("net");
        tcase_add_checked_fixture(net, setup, teardown);
        tcase_add_test(net, test_net_connect_call);
        tcase_add_test(net, test_broker_net_connect);
        suite_add_tcase(s, net);
        tcase_add_test(timer, test_timer_one_shot_and_periodic);
        tcase_add_test(timer, test_timer_cap_and_detach);
        tcase_add_test(timer, test_timer_revoke_closes);

        suite_add_tcase(s, timer);

        tcase_add_checked_fixture(bs, setup, teardown);
        tcase_set_timeout(bs, 60);
        tcase_add_test(bs, test_bus_fan_out_and_patterns);
        tcase_add_test(bs, test_bus_payload_bounds);
        tcase_add_test(bs, test_bus_slow_subscriber);
        tcase_add_test(bs, test_bus_direct_send);
        tcase_add_test(bs, test_bus_request_reply);
        tcase_add_test(bs, test_bus_request_peer_gone);
        tcase_add_test(bs, test_bus_revoke_closes_request);
        tcase_add_test(bs, test_bus_revoke_closes_subscription);
        tcase_add_test(bs, test_one_time_not_spent_on_refusal);
        tcase_add_test(bs, test_bus_publish_batch_rights);
        tcase_add_test(bs, test_bus_publish_batch_bounds);
        tcase_add_test(bs, test_bus_batched_delivery);
        tcase_add_test(bs, test_bus_batch_slow_subscriber);
        suite_add_tcase(s, bs);

        tcase_add_checked_fixture(fsroot, setup, teardown);
        tcase_set_timeout(fsroot, 60);
        tcase_add_test(fsroot, test_fs_acts_as_root_owner);
        tcase_add_test(fsroot, test_fs_open_checks_type_first);
        tcase_add_test(fsroot, test_fs_owner_groups_from_passwd);
        tcase_add_test(fsroot, test_fs_open_fd_names_nothing_else);
        tcase_add_test(fsroot, test_fs_open_leased_file_does_not_block);
        tcase_add_test(fsroot, test_fs_list);
        tcase_add_test(fsroot, test_fs_stat);
        tcase_add_test(fsroot, test_fs_mkdir_rename_unlink);
        tcase_add_test(fsroot, test_fs_open_fd_on_restricted_mount);
        tcase_add_test(fsroot, test_fs_no_mount_crossing);
        suite_add_tcase(s, fsroot);

        TCase *chan = tcase_create("channel");
        tcase_add_checked_fixture(chan, setup, teardown);
        tcase_set_timeout(chan, 60);
        tcase_add_test(chan, test_channel_open_accept);
        tcase_add_test(chan, test_channel_refused);
        tcase_add_test(chan, test_channel_crash_cancel_revoke);
        tcase_add_test(chan, test_channel_pending_bound);
        tcase_add_test(chan, test_bus_signed_messages);
        tcase_add_test(chan, test_bus_signing_bounds);
        suite_add_tcase(s, chan);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
