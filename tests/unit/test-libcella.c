/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella against a real peer: a test "kernel" thread on the other end of a
 * SOCK_SEQPACKET socketpair decodes the requests with the protocol table and
 * answers them — in order, out of order, with errors, with fds, or not at all.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/macro.h"
#include "wire/channel.h"
#include "wire/wire.h"
#include "cella.h"

/* Asserts in the kernel thread abort the test process (Check's own asserts are
 * meant for the test's main thread). */
#define K_ASSERT(x)                                                                                \
        do {                                                                                       \
                if (!(x)) {                                                                        \
                        fprintf(stderr, "kernel thread: %s:%d: %s\n", __FILE__, __LINE__, #x);     \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;
}

/* ---- the test kernel -------------------------------------------------------------- */

typedef struct Kernel {
        int fd;
        pthread_t thread;
        void (*run)(struct Kernel *k);
        int root_fd; /* "documents" for fs.open */
        uint8_t buf[CHANNEL_DATAGRAM_MAX];
        /* what it saw */
        unsigned n_requests;
        unsigned n_cancels;
        uint64_t last_cancel;
        int last_unpack_error;
} Kernel;

/* Receives one frame; returns 0, or -ECONNRESET when the app hung up. */
static int k_recv(Kernel *k, ChannelFrame *f, int *fds)
{
        int r = channel_recv(k->fd, f, k->buf, fds, CHANNEL_FDS_MAX, 0);

        K_ASSERT(r == 0 || r == -ECONNRESET);
        if (r == 0 && (f->flags & CHANNEL_FLAG_CANCEL)) {
                k->n_cancels++;
                k->last_cancel = f->request_id;
        } else if (r == 0)
                k->n_requests++;
        return r;
}

static void k_send(Kernel *k, uint16_t opcode, uint32_t flags, uint64_t id,
                   const ProtobufCMessage *m, const int *fds, unsigned n_fds)
{
        static uint8_t body[CHANNEL_BODY_MAX];
        int n = m ? wire_pack(m, body, sizeof(body)) : 0;

        K_ASSERT(n >= 0);
        K_ASSERT(channel_send(k->fd,
                              &(ChannelFrame){.opcode = opcode,
                                              .flags = flags,
                                              .request_id = id,
                                              .body = body,
                                              .body_len = (size_t)n},
                              fds, n_fds, 0) == 0);
}

static void k_reply(Kernel *k, const ChannelFrame *req, const ProtobufCMessage *m)
{
        k_send(k, req->opcode, CHANNEL_FLAG_REPLY, req->request_id, m, NULL, 0);
}

static void k_error(Kernel *k, const ChannelFrame *req, int error, const char *message)
{
        K_ASSERT(channel_send_error(k->fd, req->opcode, req->request_id, error, message, 0) == 0);
}

static void k_event(Kernel *k, uint16_t opcode, const ProtobufCMessage *m)
{
        k_send(k, opcode, CHANNEL_FLAG_EVENT, 0, m, NULL, 0);
}

static void k_timer_event(Kernel *k, uint64_t cookie)
{
        Cella__V1__TimerFiredEvent ev = CELLA__V1__TIMER_FIRED_EVENT__INIT;

        ev.timer_id = 7;
        ev.cookie = cookie;
        ev.expirations = 1;
        ev.monotonic_ns = 123;
        k_event(k, CELLA__V1__OPCODE__OPCODE_EVENT_TIMER_FIRED, &ev.base);
}

static void k_empty_reply(Kernel *k, const ChannelFrame *f)
{
        k_send(k, f->opcode, CHANNEL_FLAG_REPLY, f->request_id, NULL, NULL, 0);
}

/* Answers one decoded request as a small, predictable kernel would. */
static void serve_one(Kernel *k, const ChannelFrame *f, ProtobufCMessage *pm)
{
        switch (f->opcode) {
        case CELLA_OP_SYSTEM_INFO: {
                Cella__V1__SystemInfoReply r = CELLA__V1__SYSTEM_INFO_REPLY__INIT;

                r.cella_version = "0.1.0";
                r.os_name = "Linux";
                r.os_release = "6.1.0-test";
                r.machine = "x86_64";
                r.cpu_count = 4;
                r.memory_total_bytes = 8ull << 30;
                r.memory_available_bytes = 3ull << 30;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_SYSTEM_TIME: {
                Cella__V1__SystemTimeReply r = CELLA__V1__SYSTEM_TIME_REPLY__INIT;

                r.realtime_ns = 1700000000123456789ll;
                r.monotonic_ns = 42;
                r.utc_offset_s = 3600;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_SYSTEM_UPTIME: {
                Cella__V1__SystemUptimeReply r = CELLA__V1__SYSTEM_UPTIME_REPLY__INIT;

                r.system_ns = 3000000000ull;
                r.kernel_ns = 2000000000ull;
                r.app_ns = 1000000000ull;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_SYSTEM_ENV: {
                Cella__V1__SystemEnvReply r = CELLA__V1__SYSTEM_ENV_REPLY__INIT;
                char *env[] = {"CELLA_APP_ID=org.test.app", "CELLA_FD=3", "HOME=/data"};

                r.env = env;
                r.n_env = 3;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_PROC_LIST: {
                Cella__V1__ProcListReply r = CELLA__V1__PROC_LIST_REPLY__INIT;
                Cella__V1__Process p1 = CELLA__V1__PROCESS__INIT, p2 = CELLA__V1__PROCESS__INIT;
                Cella__V1__Process *ps[] = {&p1, &p2};
                Cella__V1__CgroupStats cg = CELLA__V1__CGROUP_STATS__INIT;

                p1.pid = 1;
                p1.name = "init";
                p1.state = "S";
                p1.rss_bytes = 4096;
                p2.pid = 2;
                p2.ppid = 1;
                p2.name = "app";
                p2.state = "R";
                p2.cpu_time_ns = 5000;
                cg.memory_current_bytes = 1 << 20;
                cg.memory_limit_bytes = 64 << 20;
                cg.pids_current = 2;
                cg.pids_limit = 32;
                cg.cpu_weight = 100;
                r.processes = ps;
                r.n_processes = 2;
                r.cgroup = &cg;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_PROC_SIGNAL: {
                Cella__V1__ProcSignalRequest *q = (void *)pm;

                if (q->pid == 2 && q->signal == 15)
                        k_empty_reply(k, f);
                else
                        k_error(k, f, ESRCH, "not one of yours");
                break;
        }
        case CELLA_OP_APP_INFO: {
                Cella__V1__AppInfoReply r = CELLA__V1__APP_INFO_REPLY__INIT;
                Cella__V1__AppLimits l = CELLA__V1__APP_LIMITS__INIT;
                char *req[] = {"storage", "bus.publish:notes.*", "location"};
                char *gr[] = {"storage", "bus.publish:notes.*"};

                r.id = "org.test.app";
                r.name = "Test";
                r.version = "1.2.0";
                r.kind = "app";
                r.runtime = "native";
                r.requested = req;
                r.n_requested = 3;
                r.granted = gr;
                r.n_granted = 2;
                l.memory_bytes = 64 << 20;
                l.pids = 32;
                l.cpu_millis = 500;
                r.limits = &l;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_APP_LAUNCH: {
                Cella__V1__AppLaunchRequest *q = (void *)pm;
                Cella__V1__AppLaunchReply r = CELLA__V1__APP_LAUNCH_REPLY__INIT;

                if (strcmp(q->app_id, "org.test.other") != 0) {
                        k_error(k, f, ENOENT, "no such app");
                        break;
                }
                K_ASSERT(q->intent && q->intent->data.len == 5);
                K_ASSERT(memcmp(q->intent->data.data, "hello", 5) == 0);
                r.already_running = strcmp(q->intent->action, "view") == 0;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_FS_OPEN: {
                Cella__V1__FsOpenRequest *q = (void *)pm;
                Cella__V1__FsOpenReply r = CELLA__V1__FS_OPEN_REPLY__INIT;
                _cleanup_close_ int fd = -EBADF;
                struct stat st;

                if (strcmp(q->root, "documents") != 0) {
                        k_error(k, f, EACCES, "root not granted");
                        break;
                }
                K_ASSERT(q->flags == CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_READ);
                fd = openat(k->root_fd, q->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0) {
                        k_error(k, f, errno, "open");
                        break;
                }
                K_ASSERT(fstat(fd, &st) == 0);
                r.size_bytes = (uint64_t)st.st_size;
                k_send(k, f->opcode, CHANNEL_FLAG_REPLY, f->request_id, &r.base, &fd, 1);
                break;
        }
        case CELLA_OP_NET_CONNECT: {
                /* The kernel's side as calls/net.c does it: a socketpair, one end to
                 * the app; a name it does not know is refused with a sentence. */
                Cella__V1__NetConnectRequest *q = (void *)pm;
                Cella__V1__NetConnectReply r = CELLA__V1__NET_CONNECT_REPLY__INIT;
                int sp[2];

                if (strcmp(q->host, "allowed.test") != 0 || q->port != 443) {
                        k_error(k, f, EPERM, "priv.test resolves to 10.0.0.1, a private address");
                        break;
                }
                K_ASSERT(q->proto == CELLA__V1__NET_PROTO__NET_PROTO_UDP);
                K_ASSERT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
                K_ASSERT(write(sp[0], "hello", 5) == 5);
                safe_close(sp[0]);
                r.address = "203.0.113.7";
                r.right = "net.connect:allowed.test:443";
                r.connection_id = 7;
                k_send(k, f->opcode, CHANNEL_FLAG_REPLY, f->request_id, &r.base, &sp[1], 1);
                safe_close(sp[1]);
                break;
        }
        case CELLA_OP_FS_LIST: {
                Cella__V1__FsListRequest *q = (void *)pm;
                Cella__V1__FsListReply r = CELLA__V1__FS_LIST_REPLY__INIT;
                Cella__V1__FsEntry e[2] = {CELLA__V1__FS_ENTRY__INIT, CELLA__V1__FS_ENTRY__INIT};
                Cella__V1__FsEntry *ep[2] = {&e[0], &e[1]};

                K_ASSERT(strcmp(q->root, "documents") == 0 && strcmp(q->path, ".") == 0);
                K_ASSERT(q->max_entries == 2);
                e[0].name = (char *)"a.txt";
                e[0].type = CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_REGULAR;
                e[0].size_bytes = 12;
                e[0].mtime_ns = 1000;
                e[1].name = (char *)"sub";
                e[1].type = CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_DIRECTORY;
                r.entries = ep;
                r.n_entries = q->cookie == 0 ? 2 : 0;
                r.next_cookie = q->cookie + 77;
                r.end = q->cookie != 0;
                r.skipped = q->cookie == 0 ? 1 : 0;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_FS_STAT: {
                Cella__V1__FsStatRequest *q = (void *)pm;
                Cella__V1__FsStatReply r = CELLA__V1__FS_STAT_REPLY__INIT;

                r.type = q->no_follow ? CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_SYMLINK
                                      : CELLA__V1__FS_FILE_TYPE__FS_FILE_TYPE_REGULAR;
                r.mode = 0640;
                r.size_bytes = 42;
                r.mtime_ns = 5;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_FS_MKDIR: {
                Cella__V1__FsMkdirRequest *q = (void *)pm;

                K_ASSERT(q->mode == 0750);
                if (strcmp(q->path, "exists") == 0)
                        k_error(k, f, EEXIST, NULL);
                else
                        k_empty_reply(k, f);
                break;
        }
        case CELLA_OP_FS_RENAME: {
                Cella__V1__FsRenameRequest *q = (void *)pm;

                K_ASSERT(strcmp(q->old_path, "a") == 0 && strcmp(q->new_path, "b") == 0);
                if (q->flags == CELLA__V1__FS_RENAME_FLAG__FS_RENAME_FLAG_NOREPLACE)
                        k_error(k, f, EEXIST, NULL);
                else
                        k_empty_reply(k, f);
                break;
        }
        case CELLA_OP_FS_UNLINK:
                if (strcmp(((Cella__V1__FsUnlinkRequest *)(void *)pm)->path, "../x") == 0)
                        k_error(k, f, EXDEV, "the path leaves the root");
                else
                        k_empty_reply(k, f);
                break;
        case CELLA_OP_FS_USAGE: {
                Cella__V1__FsUsageReply r = CELLA__V1__FS_USAGE_REPLY__INIT;

                r.data_used_bytes = 1000;
                r.data_quota_bytes = 100 << 20;
                r.tmp_used_bytes = 10;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_TIMER_CREATE: {
                Cella__V1__TimerCreateRequest *q = (void *)pm;
                Cella__V1__TimerCreateReply r = CELLA__V1__TIMER_CREATE_REPLY__INIT;

                r.timer_id = 7;
                k_reply(k, f, &r.base);
                if (q->initial_ms == 0)
                        k_timer_event(k, q->cookie);
                break;
        }
        case CELLA_OP_TIMER_CANCEL:
                if (((Cella__V1__TimerCancelRequest *)(void *)pm)->timer_id == 7)
                        k_empty_reply(k, f);
                else
                        k_error(k, f, ENOENT, NULL);
                break;
        case CELLA_OP_PERM_QUERY: {
                Cella__V1__PermQueryRequest *q = (void *)pm;
                Cella__V1__PermQueryReply r = CELLA__V1__PERM_QUERY_REPLY__INIT;

                if (strcmp(q->permission, "camera") == 0)
                        k_error(k, f, EACCES, "not granted: camera");
                else if (strcmp(q->permission, "device.admin") == 0)
                        k_error(k, f, EPERM, "never for this app");
                else {
                        r.state = strcmp(q->permission, "storage") == 0
                                          ? CELLA__V1__PERM_STATE__PERM_STATE_GRANTED
                                          : CELLA__V1__PERM_STATE__PERM_STATE_ASK;
                        k_reply(k, f, &r.base);
                }
                break;
        }
        case CELLA_OP_PERM_REQUEST: {
                Cella__V1__PermRequestRequest *q = (void *)pm;
                Cella__V1__PermRequestReply r = CELLA__V1__PERM_REQUEST_REPLY__INIT;

                r.state = strcmp(q->permission, "location") == 0
                                  ? CELLA__V1__PERM_STATE__PERM_STATE_GRANTED
                                  : CELLA__V1__PERM_STATE__PERM_STATE_DENIED;
                r.one_time = strcmp(q->reason, "once") == 0;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_PERM_LIST: {
                Cella__V1__PermListReply r = CELLA__V1__PERM_LIST_REPLY__INIT;
                Cella__V1__PermEntry e1 = CELLA__V1__PERM_ENTRY__INIT,
                                     e2 = CELLA__V1__PERM_ENTRY__INIT;
                Cella__V1__PermEntry *es[] = {&e1, &e2};

                e1.permission = "storage";
                e1.state = CELLA__V1__PERM_STATE__PERM_STATE_GRANTED;
                e1.level = CELLA__V1__PERM_LEVEL__PERM_LEVEL_NORMAL;
                e2.permission = "location";
                e2.state = CELLA__V1__PERM_STATE__PERM_STATE_ASK;
                e2.level = CELLA__V1__PERM_LEVEL__PERM_LEVEL_DANGEROUS;
                e2.one_time = true;
                r.permissions = es;
                r.n_permissions = 2;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_NOTIFY_POST: {
                Cella__V1__NotifyPostRequest *q = (void *)pm;
                Cella__V1__NotifyPostReply r = CELLA__V1__NOTIFY_POST_REPLY__INIT;

                if (strcmp(q->title, "flood") == 0) {
                        k_error(k, f, EAGAIN, "rate-limited");
                        break;
                }
                K_ASSERT(q->urgency == CELLA__V1__URGENCY__URGENCY_CRITICAL);
                r.notification_id = 9;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_MEMORY_STATS: {
                Cella__V1__MemoryStatsReply r = CELLA__V1__MEMORY_STATS_REPLY__INIT;

                r.current_bytes = 5 << 20;
                r.limit_bytes = 64 << 20;
                r.level = CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_LOW;
                r.pressure_some_avg10 = 250;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_BUS_PUBLISH: {
                Cella__V1__BusPublishRequest *q = (void *)pm;
                Cella__V1__BusPublishReply r = CELLA__V1__BUS_PUBLISH_REPLY__INIT;

                K_ASSERT(strcmp(q->content_type, "text/plain") == 0);
                r.delivered = (uint32_t)q->data.len;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_BUS_PUBLISH_BATCH: {
                Cella__V1__BusPublishBatchRequest *q = (void *)pm;
                Cella__V1__BusPublishBatchReply r = CELLA__V1__BUS_PUBLISH_BATCH_REPLY__INIT;
                Cella__V1__BusMessagesEvent ev = CELLA__V1__BUS_MESSAGES_EVENT__INIT;
                Cella__V1__BusMessageEvent *m = calloc(q->n_messages, sizeof(*m));
                Cella__V1__BusMessageEvent **ptr = calloc(q->n_messages, sizeof(*ptr));

                K_ASSERT(m && ptr);
                /* A topic the app may not publish to refuses the whole batch. */
                for (size_t i = 0; i < q->n_messages; i++)
                        if (strcmp(q->messages[i]->topic, "secret.x") == 0) {
                                k_error(k, f, EACCES, "bus.publish:secret.x: not granted");
                                free(m);
                                free(ptr);
                                return;
                        }
                /* Each message comes back once, batched (as to a subscriber of all). */
                for (size_t i = 0; i < q->n_messages; i++) {
                        m[i] = (Cella__V1__BusMessageEvent)CELLA__V1__BUS_MESSAGE_EVENT__INIT;
                        m[i].subscription_id = 11;
                        m[i].topic = q->messages[i]->topic;
                        m[i].sender = "org.test.self";
                        m[i].data = q->messages[i]->data;
                        m[i].content_type = q->messages[i]->content_type;
                        ptr[i] = &m[i];
                        r.delivered += q->messages[i]->data.len;
                }
                r.messages = (uint32_t)q->n_messages;
                ev.n_messages = q->n_messages;
                ev.messages = ptr;
                /* The deliveries before the reply: the app may hang up as soon as it
                 * has its reply, and a send after that would fail. (The broker would
                 * split what does not fit one frame.) */
                if (protobuf_c_message_get_packed_size(&ev.base) <= CHANNEL_BODY_MAX)
                        k_event(k, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGES, &ev.base);
                k_reply(k, f, &r.base);
                free(m);
                free(ptr);
                break;
        }
        case CELLA_OP_BUS_SUBSCRIBE: {
                Cella__V1__BusSubscribeRequest *q = (void *)pm;
                Cella__V1__BusSubscribeReply r = CELLA__V1__BUS_SUBSCRIBE_REPLY__INIT;
                Cella__V1__BusMessageEvent ev = CELLA__V1__BUS_MESSAGE_EVENT__INIT;

                /* libcella decodes batched deliveries, and says so. */
                K_ASSERT(q->batch);
                r.subscription_id = 11;
                k_reply(k, f, &r.base);
                ev.subscription_id = 11;
                ev.topic = "clock.tick";
                ev.sender = "org.test.clock";
                ev.data = (ProtobufCBinaryData){.len = 4, .data = (uint8_t *)"tick"};
                ev.content_type = "text/plain";
                k_event(k, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE, &ev.base);
                break;
        }
        case CELLA_OP_BUS_UNSUBSCRIBE:
        case CELLA_OP_BUS_SEND:
                k_empty_reply(k, f);
                break;
        case CELLA_OP_BUS_REQUEST: {
                Cella__V1__BusRequestRequest *q = (void *)pm;
                Cella__V1__BusRequestReply r = CELLA__V1__BUS_REQUEST_REPLY__INIT;
                uint8_t up[64];

                K_ASSERT(q->data.len <= sizeof(up));
                for (size_t i = 0; i < q->data.len; i++)
                        up[i] = (uint8_t)(q->data.data[i] & ~0x20);
                r.data = (ProtobufCBinaryData){.len = q->data.len, .data = up};
                r.content_type = q->content_type;
                r.responder = q->app_id;
                k_reply(k, f, &r.base);
                break;
        }
        case CELLA_OP_BUS_REPLY: {
                Cella__V1__BusReplyRequest *q = (void *)pm;

                if (q->reply_token == 5 && q->errnum == 0)
                        k_empty_reply(k, f);
                else
                        k_error(k, f, ENOENT, NULL);
                break;
        }
        default:
                k_error(k, f, EOPNOTSUPP, NULL);
        }
}

/* The kernel most tests talk to: answers every request until the app hangs up. */
static void run_serve(Kernel *k)
{
        for (;;) {
                int fds[CHANNEL_FDS_MAX];
                ProtobufCMessage *m = NULL;
                ChannelFrame f;
                int r;

                if (k_recv(k, &f, fds) < 0)
                        return;
                if (f.flags & CHANNEL_FLAG_CANCEL)
                        continue;
                /* As the broker will: a request that does not decode, or with the wrong
                 * fd count, gets an error reply; the channel carries on. */
                r = wire_unpack(&f, &m);
                for (unsigned i = 0; i < f.n_fds; i++)
                        safe_close(fds[i]);
                if (r < 0) {
                        k->last_unpack_error = r;
                        k_error(k, &f, r, "bad request");
                        continue;
                }
                serve_one(k, &f, m);
                protobuf_c_message_free_unpacked(m, NULL);
        }
}

static void *kernel_main(void *p)
{
        Kernel *k = p;

        k->run(k);
        return NULL;
}

static Kernel *kernel;
static Cella *cella;
static int fds_before;
static char tmpdir[64];

/* Starts kernel behaviour run on one end of a socketpair and opens libcella on the other. */
static void start(void (*run)(Kernel *k))
{
        int sv[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        kernel = calloc(1, sizeof(Kernel));
        ck_assert_ptr_nonnull(kernel);
        kernel->fd = sv[1];
        kernel->run = run;
        kernel->root_fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(kernel->root_fd, 0);
        ck_assert_int_eq(cella_open_fd(sv[0], &cella), 0);
        ck_assert_int_eq(pthread_create(&kernel->thread, NULL, kernel_main, kernel), 0);
}

/* Hangs up (so run_serve returns), joins the kernel, frees both ends. */
static void stop(void)
{
        cella = cella_close(cella);
        ck_assert_int_eq(pthread_join(kernel->thread, NULL), 0);
        safe_close(kernel->fd);
        safe_close(kernel->root_fd);
        free(kernel);
        kernel = NULL;
}

static void setup(void)
{
        fds_before = count_fds();
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-libcella-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
        char p[PATH_MAX];

        snprintf(p, sizeof(p), "%s/note.txt", tmpdir);
        unlink(p);
        rmdir(tmpdir);
        ck_assert_int_eq(count_fds(), fds_before);
}

/* Dispatches until *done or 5 s pass. */
static void dispatch_until(Cella *c, const bool *done)
{
        for (int i = 0; i < 500 && !*done; i++) {
                int r = cella_wait(c, 10);

                ck_assert_int_ge(r, 0);
                if (r > 0)
                        ck_assert_int_ge(cella_dispatch(c), 0);
        }
        ck_assert_msg(*done, "condition not reached");
}

/* ---- tests ------------------------------------------------------------------------ */

START_TEST(test_sync_calls)
{
        CellaSystemInfo *info = NULL;
        CellaTime t;
        CellaUptime u;
        char **env = NULL;
        CellaProcList *pl = NULL;
        CellaAppInfo *ai = NULL;
        CellaFsUsage fu;
        CellaFsList *fl = NULL;
        CellaFsStat fst;
        CellaPermState st;
        CellaPermList *perms = NULL;
        CellaMemoryStats ms;
        CellaBusReply *br = NULL;
        uint64_t id;
        bool one_time = false;

        start(run_serve);

        ck_assert_int_eq(cella_system_info(cella, &info), 0);
        ck_assert_str_eq(info->cella_version, "0.1.0");
        ck_assert_str_eq(info->os_release, "6.1.0-test");
        ck_assert_str_eq(info->machine, "x86_64");
        ck_assert_uint_eq(info->cpu_count, 4);
        ck_assert_uint_eq(info->memory_total_bytes, 8ull << 30);
        cella_free(info);

        ck_assert_int_eq(cella_system_time(cella, &t), 0);
        ck_assert_int_eq(t.realtime_ns, 1700000000123456789ll);
        ck_assert_int_eq(t.utc_offset_s, 3600);
        ck_assert_int_eq(cella_system_uptime(cella, &u), 0);
        ck_assert_uint_eq(u.app_ns, 1000000000ull);
        ck_assert_uint_eq(u.system_ns, 3000000000ull);

        ck_assert_int_eq(cella_system_env(cella, &env), 0);
        ck_assert_str_eq(env[0], "CELLA_APP_ID=org.test.app");
        ck_assert_str_eq(env[2], "HOME=/data");
        ck_assert_ptr_null(env[3]);
        cella_free(env);

        ck_assert_int_eq(cella_proc_list(cella, &pl), 0);
        ck_assert_uint_eq(pl->n_processes, 2);
        ck_assert_str_eq(pl->processes[0].name, "init");
        ck_assert_int_eq(pl->processes[1].ppid, 1);
        ck_assert_int_eq(pl->processes[1].state, 'R');
        ck_assert_uint_eq(pl->cgroup.memory_limit_bytes, 64 << 20);
        ck_assert_uint_eq(pl->cgroup.pids_limit, 32);
        cella_free(pl);
        ck_assert_int_eq(cella_proc_signal(cella, 2, 15), 0);

        ck_assert_int_eq(cella_app_info(cella, &ai), 0);
        ck_assert_str_eq(ai->id, "org.test.app");
        ck_assert_str_eq(ai->requested[2], "location");
        ck_assert_ptr_null(ai->requested[3]);
        ck_assert_str_eq(ai->granted[1], "bus.publish:notes.*");
        ck_assert_ptr_null(ai->granted[2]);
        ck_assert_uint_eq(ai->limits.cpu_millis, 500);
        cella_free(ai);

        ck_assert_int_eq(
                cella_app_launch(cella, "org.test.other", "edit", "hello", 5, "text/plain"), 0);
        ck_assert_int_eq(cella_app_launch(cella, "org.test.other", "view", "hello", 5, NULL), 1);

        ck_assert_int_eq(cella_fs_usage(cella, &fu), 0);
        ck_assert_uint_eq(fu.data_quota_bytes, 100 << 20);

        ck_assert_int_eq(cella_fs_list(cella, "documents", ".", 0, 2, &fl), 0);
        ck_assert_uint_eq(fl->n_entries, 2);
        ck_assert_str_eq(fl->entries[0].name, "a.txt");
        ck_assert_int_eq(fl->entries[0].type, CELLA_FS_REGULAR);
        ck_assert_uint_eq(fl->entries[0].size_bytes, 12);
        ck_assert_int_eq(fl->entries[0].mtime_ns, 1000);
        ck_assert_str_eq(fl->entries[1].name, "sub");
        ck_assert_int_eq(fl->entries[1].type, CELLA_FS_DIRECTORY);
        ck_assert(!fl->end);
        ck_assert_uint_eq(fl->skipped, 1);
        ck_assert_uint_eq(fl->next_cookie, 77);
        cella_free(fl);
        ck_assert_int_eq(cella_fs_list(cella, "documents", ".", 77, 2, &fl), 0);
        ck_assert_uint_eq(fl->n_entries, 0);
        ck_assert(fl->end);
        cella_free(fl);
        ck_assert_int_eq(cella_fs_stat(cella, "documents", "a.txt", 0, &fst), 0);
        ck_assert_int_eq(fst.type, CELLA_FS_REGULAR);
        ck_assert_uint_eq(fst.mode, 0640);
        ck_assert_uint_eq(fst.size_bytes, 42);
        ck_assert_int_eq(cella_fs_stat(cella, "documents", "a.txt", AT_SYMLINK_NOFOLLOW, &fst), 0);
        ck_assert_int_eq(fst.type, CELLA_FS_SYMLINK);
        ck_assert_int_eq(cella_fs_mkdir(cella, "documents", "new", 0750), 0);
        ck_assert_int_eq(cella_fs_mkdir(cella, "documents", "exists", 0750), -EEXIST);
        ck_assert_int_eq(cella_fs_rename(cella, "documents", "a", "b", 0), 0);
        ck_assert_int_eq(cella_fs_rename(cella, "documents", "a", "b", CELLA_FS_RENAME_NOREPLACE),
                         -EEXIST);
        ck_assert_int_eq(cella_fs_unlink(cella, "documents", "x"), 0);
        ck_assert_int_eq(cella_fs_unlink(cella, "documents", "../x"), -EXDEV);

        ck_assert_int_eq(cella_timer_create(cella, 1000, 0, 77, &id), 0);
        ck_assert_uint_eq(id, 7);
        ck_assert_int_eq(cella_timer_cancel(cella, 7), 0);

        ck_assert_int_eq(cella_perm_query(cella, "storage", &st), 0);
        ck_assert_int_eq(st, CELLA_PERM_GRANTED);
        ck_assert_int_eq(cella_perm_query(cella, "location", &st), 0);
        ck_assert_int_eq(st, CELLA_PERM_ASK);
        ck_assert_int_eq(cella_perm_request(cella, "location", "once", &st, &one_time), 0);
        ck_assert_int_eq(st, CELLA_PERM_GRANTED);
        ck_assert(one_time);
        ck_assert_int_eq(cella_perm_list(cella, &perms), 0);
        ck_assert_uint_eq(perms->n_entries, 2);
        ck_assert_str_eq(perms->entries[1].permission, "location");
        ck_assert_int_eq(perms->entries[1].level, CELLA_PERM_LEVEL_DANGEROUS);
        ck_assert(perms->entries[1].one_time);
        cella_free(perms);

        ck_assert_int_eq(
                cella_notify_post(cella, "Hello", "body", CELLA_URGENCY_CRITICAL, NULL, &id), 0);
        ck_assert_uint_eq(id, 9);

        ck_assert_int_eq(cella_memory_stats(cella, &ms), 0);
        ck_assert_uint_eq(ms.limit_bytes, 64 << 20);
        ck_assert_int_eq(ms.level, CELLA_MEMORY_LOW);
        ck_assert_uint_eq(ms.pressure_some_avg10, 250);

        ck_assert_int_eq(cella_bus_publish(cella, "notes.saved", "12345", 5, "text/plain"), 5);
        ck_assert_int_eq(cella_bus_subscribe(cella, "clock.*", &id), 0);
        ck_assert_uint_eq(id, 11);
        ck_assert_int_eq(cella_bus_unsubscribe(cella, 11), 0);
        ck_assert_int_eq(cella_bus_send(cella, "org.test.other", "x", 1, NULL), 0);
        ck_assert_int_eq(
                cella_bus_request(cella, "org.test.other", "upper", "abc", 3, "text/plain", 0, &br),
                0);
        ck_assert_uint_eq(br->len, 3);
        ck_assert_mem_eq(br->data, "ABC", 3);
        ck_assert_str_eq(br->responder, "org.test.other");
        ck_assert_str_eq(br->content_type, "text/plain");
        cella_free(br);
        ck_assert_int_eq(cella_bus_reply(cella, 5, 0, "ok", 2, NULL), 0);

        stop();
}
END_TEST

START_TEST(test_errors)
{
        CellaPermState st = 0;
        CellaReply *reply = NULL;
        uint8_t big[CELLA_PAYLOAD_MAX + 1] = {0};
        char long_topic[CELLA_TOPIC_MAX + 2];
        CellaFsList *fl = NULL;
        CellaFsStat fst;
        uint64_t id;
        int fd = -1;

        start(run_serve);

        /* The kernel's errors, as the protocol names them. */
        ck_assert_int_eq(cella_perm_query(cella, "camera", &st), -EACCES);
        ck_assert_int_eq(st, 0); /* untouched on failure */
        ck_assert_int_eq(cella_perm_query(cella, "device.admin", &st), -EPERM);
        ck_assert_int_eq(cella_notify_post(cella, "flood", NULL, CELLA_URGENCY_NORMAL, NULL, NULL),
                         -EAGAIN);
        ck_assert_int_eq(cella_proc_signal(cella, 99, 9), -ESRCH);
        ck_assert_int_eq(cella_timer_cancel(cella, 8), -ENOENT);
        ck_assert_int_eq(cella_app_launch(cella, "org.none", NULL, NULL, 0, NULL), -ENOENT);
        ck_assert_int_eq(cella_bus_reply(cella, 6, 0, NULL, 0, NULL), -ENOENT);
        ck_assert_int_eq(cella_fs_open(cella, "media", "a", O_RDONLY, 0, &fd), -EACCES);
        ck_assert_int_eq(fd, -1);

        /* The generic form shows the kernel's message too. */
        {
                Cella__V1__PermQueryRequest q = CELLA__V1__PERM_QUERY_REQUEST__INIT;
                uint8_t body[64];
                int n;

                q.permission = "camera";
                n = wire_pack(&q.base, body, sizeof(body));
                ck_assert_int_eq(
                        cella_call(cella, CELLA_OP_PERM_QUERY, body, (size_t)n, NULL, 0, &reply),
                        0);
                ck_assert_int_eq(reply->error, -EACCES);
                ck_assert_str_eq(reply->error_message, "not granted: camera");
                ck_assert_ptr_null(reply->body);
                reply = cella_reply_free(reply);
        }

        /* Unknown opcode: the kernel answers EOPNOTSUPP and carries on. */
        ck_assert_int_eq(cella_call(cella, 0x0777, NULL, 0, NULL, 0, &reply), 0);
        ck_assert_int_eq(reply->error, -EOPNOTSUPP);
        reply = cella_reply_free(reply);

        /* Garbage body: EBADMSG. A request with an fd no call takes: EPROTO. */
        ck_assert_int_eq(cella_call(cella, CELLA_OP_PERM_QUERY, "\xff\xff", 2, NULL, 0, &reply), 0);
        ck_assert_int_eq(reply->error, -EBADMSG);
        reply = cella_reply_free(reply);
        {
                int p[2];

                ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
                ck_assert_int_eq(cella_call(cella, CELLA_OP_SYSTEM_INFO, NULL, 0, p, 1, &reply), 0);
                ck_assert_int_eq(reply->error, -EPROTO);
                reply = cella_reply_free(reply);
                safe_close(p[0]);
                safe_close(p[1]);
        }
        /* And the channel still works. */
        ck_assert_int_eq(cella_perm_query(cella, "storage", &st), 0);

        /* Checked before anything is sent. */
        memset(long_topic, 'a', sizeof(long_topic) - 1);
        long_topic[sizeof(long_topic) - 1] = 0;
        ck_assert_int_eq(cella_bus_publish(cella, long_topic, "x", 1, NULL), -EINVAL);
        long_topic[CELLA_TOPIC_MAX] = 0; /* exactly at the limit: fine */
        ck_assert_int_eq(cella_bus_publish(cella, long_topic, "x", 1, "text/plain"), 1);
        ck_assert_int_eq(cella_bus_publish(cella, "t", big, sizeof(big), NULL), -EMSGSIZE);
        ck_assert_int_eq(cella_bus_publish(cella, "", "x", 1, NULL), -EINVAL);
        ck_assert_int_eq(cella_bus_publish(cella, "t", NULL, 1, NULL), -EINVAL);
        ck_assert_int_eq(cella_fs_open(cella, "documents", "a", O_RDONLY | O_PATH, 0, &fd),
                         -EINVAL);
        ck_assert_int_eq(cella_fs_open(cella, "documents", "/etc/passwd", O_RDONLY, 0, &fd),
                         -EINVAL);
        ck_assert_int_eq(cella_fs_open(cella, "documents", "a", O_RDONLY, 01777, &fd), -EINVAL);
        ck_assert_int_eq(cella_fs_open(cella, "documents", ".", O_RDONLY | O_DIRECTORY, 0, &fd),
                         -EINVAL);
        ck_assert_int_eq(cella_fs_list(cella, "documents", ".", 0, CELLA_FS_LIST_MAX + 1, &fl),
                         -EINVAL);
        ck_assert_int_eq(cella_fs_list(cella, "documents", ".", (uint64_t)INT64_MAX + 1, 0, &fl),
                         -EINVAL);
        ck_assert_int_eq(cella_fs_list(cella, "documents", "", 0, 0, &fl), -EINVAL);
        ck_assert_int_eq(cella_fs_list(cella, "documents", ".", 0, 0, NULL), -EINVAL);
        ck_assert_int_eq(cella_fs_stat(cella, "documents", "a", AT_EMPTY_PATH, &fst), -EINVAL);
        ck_assert_int_eq(cella_fs_mkdir(cella, "documents", "a", 01777), -EINVAL);
        ck_assert_int_eq(cella_fs_mkdir(cella, NULL, "a", 0700), -EINVAL);
        ck_assert_int_eq(cella_fs_rename(cella, "documents", "a", "b", 3), -EINVAL);
        ck_assert_int_eq(cella_fs_rename(cella, "documents", "a", "", 0), -EINVAL);
        ck_assert_int_eq(cella_fs_unlink(cella, "", "a"), -EINVAL);
        ck_assert_int_eq(cella_proc_signal(cella, 1, 65), -EINVAL);
        ck_assert_int_eq(cella_bus_reply(cella, 5, 5, NULL, 0, NULL), -EINVAL);
        ck_assert_int_eq(cella_call_async(cella, 0, NULL, 0, NULL, 0, NULL, NULL, &id), -EINVAL);
        ck_assert_int_eq(
                cella_call_async(cella, CELLA_EVENT_TIMER_FIRED, NULL, 0, NULL, 0, NULL, NULL, &id),
                -EINVAL);
        ck_assert_int_eq(cella_call_async(cella, CELLA_OP_SYSTEM_INFO, big, CELLA_BODY_MAX + 1,
                                          NULL, 0, NULL, NULL, &id),
                         -EMSGSIZE);
        {
                int many[CELLA_FDS_MAX + 1] = {0};

                ck_assert_int_eq(cella_call_async(cella, CELLA_OP_SYSTEM_INFO, NULL, 0, many,
                                                  CELLA_FDS_MAX + 1, NULL, NULL, &id),
                                 -E2BIG);
        }
        ck_assert_str_eq(cella_opcode_name(CELLA_OP_FS_OPEN), "fs.open");
        ck_assert_str_eq(cella_opcode_name(CELLA_EVENT_BUS_MESSAGE), "event.bus_message");
        ck_assert_ptr_null(cella_opcode_name(0x0777));

        stop();
}
END_TEST

START_TEST(test_fd_passing)
{
        char p[PATH_MAX], data[64] = {0};
        int fd = -1, w;

        snprintf(p, sizeof(p), "%s/note.txt", tmpdir);
        w = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(w, 0);
        ck_assert_int_eq(write(w, "a real file\n", 12), 12);
        safe_close(w);

        start(run_serve);
        ck_assert_int_eq(cella_fs_open(cella, "documents", "note.txt", O_RDONLY, 0, &fd), 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_int_eq(read(fd, data, sizeof(data)), 12);
        ck_assert_str_eq(data, "a real file\n");
        safe_close(fd);

        /* A missing file: the open's own errno. */
        ck_assert_int_eq(cella_fs_open(cella, "documents", "missing", O_RDONLY, 0, &fd), -ENOENT);

        /* The generic form: take the fd, or let cella_reply_free() close it. */
        {
                Cella__V1__FsOpenRequest q = CELLA__V1__FS_OPEN_REQUEST__INIT;
                CellaReply *reply = NULL;
                uint8_t body[128];
                int n;

                q.root = "documents";
                q.path = "note.txt";
                q.flags = CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_READ;
                n = wire_pack(&q.base, body, sizeof(body));
                ck_assert_int_eq(
                        cella_call(cella, CELLA_OP_FS_OPEN, body, (size_t)n, NULL, 0, &reply), 0);
                ck_assert_int_eq(reply->error, 0);
                ck_assert_uint_eq(reply->n_fds, 1);
                reply = cella_reply_free(reply); /* closes it: teardown counts */

                ck_assert_int_eq(
                        cella_call(cella, CELLA_OP_FS_OPEN, body, (size_t)n, NULL, 0, &reply), 0);
                fd = cella_reply_take_fd(reply, 0);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(cella_reply_take_fd(reply, 0), -EBADF);
                ck_assert_int_eq(cella_reply_take_fd(reply, 1), -EBADF);
                reply = cella_reply_free(reply);
                ck_assert_int_eq(fcntl(fd, F_GETFD) >= 0, 1); /* still ours */
                safe_close(fd);
        }
        stop();
}
END_TEST

START_TEST(test_net_connect)
{
        CellaNetInfo info;
        char buf[16];
        int fd;

        start(run_serve);
        fd = cella_net_connect(cella, "allowed.test", 443, CELLA_NET_UDP, &info);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_str_eq(info.address, "203.0.113.7");
        ck_assert_str_eq(info.right, "net.connect:allowed.test:443");
        ck_assert_uint_eq(info.connection_id, 7);
        ck_assert_str_eq(info.why, "");
        ck_assert_int_eq(read(fd, buf, sizeof(buf)), 5);
        safe_close(fd);

        /* The kernel's sentence comes back with its errno. */
        ck_assert_int_eq(cella_net_connect(cella, "priv.test", 443, CELLA_NET_TCP, &info), -EPERM);
        ck_assert_str_eq(info.why, "priv.test resolves to 10.0.0.1, a private address");
        ck_assert_str_eq(info.address, "");
        ck_assert_int_eq(cella_net_connect(cella, "priv.test", 443, CELLA_NET_TCP, NULL), -EPERM);

        /* Bad arguments never reach the kernel. */
        ck_assert_int_eq(cella_net_connect(cella, NULL, 443, CELLA_NET_TCP, &info), -EINVAL);
        ck_assert_int_eq(cella_net_connect(cella, "", 443, CELLA_NET_TCP, &info), -EINVAL);
        ck_assert_int_eq(cella_net_connect(cella, "a", 0, CELLA_NET_TCP, &info), -EINVAL);
        ck_assert_int_eq(cella_net_connect(cella, "a", 65536, CELLA_NET_TCP, &info), -EINVAL);
        ck_assert_int_eq(cella_net_connect(cella, "a", 1, (CellaNetProto)9, &info), -EINVAL);
        ck_assert_str_eq(cella_opcode_name(CELLA_OP_NET_CONNECT), "net.connect");
        stop();
}
END_TEST

/* Kernel: reads three requests, answers them last first. */
static void run_reverse(Kernel *k)
{
        ChannelFrame f[3];
        int fds[CHANNEL_FDS_MAX];
        Cella__V1__SystemTimeReply r = CELLA__V1__SYSTEM_TIME_REPLY__INIT;

        for (int i = 0; i < 3; i++) {
                K_ASSERT(k_recv(k, &f[i], fds) == 0);
                f[i].body = NULL; /* the buffer is reused */
        }
        for (int i = 2; i >= 0; i--) {
                r.monotonic_ns = (int64_t)f[i].request_id * 1000;
                k_reply(k, &f[i], &r.base);
        }
        while (k_recv(k, &f[0], fds) == 0)
                ;
}

typedef struct Seen {
        unsigned n;
        uint64_t ids[CELLA_MAX_PENDING + 8];
        int errors[CELLA_MAX_PENDING + 8];
        bool done;
        unsigned want;
} Seen;

static void on_reply(Cella *c, CellaReply *reply, void *userdata)
{
        Seen *s = userdata;

        ck_assert_uint_lt(s->n, ELEMENTSOF(s->ids));
        s->ids[s->n] = reply->request_id;
        s->errors[s->n] = reply->error;
        s->n++;
        if (s->n >= s->want)
                s->done = true;
}

static void on_time_reply(Cella *c, CellaReply *reply, void *userdata)
{
        Cella__V1__SystemTimeReply *m;

        ck_assert_int_eq(reply->error, 0);
        ck_assert_uint_eq(reply->opcode, CELLA_OP_SYSTEM_TIME);
        m = cella__v1__system_time_reply__unpack(NULL, reply->body_len, reply->body);
        ck_assert_ptr_nonnull(m);
        /* Each callback gets its own reply, whatever the order. */
        ck_assert_int_eq(m->monotonic_ns, (int64_t)reply->request_id * 1000);
        cella__v1__system_time_reply__free_unpacked(m, NULL);
        on_reply(c, reply, userdata);
}

START_TEST(test_out_of_order)
{
        Seen seen = {.want = 3};
        uint64_t id[3];

        start(run_reverse);
        for (int i = 0; i < 3; i++) {
                ck_assert_int_eq(cella_call_async(cella, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0,
                                                  on_time_reply, &seen, &id[i]),
                                 0);
                ck_assert_uint_gt(id[i], 0);
        }
        ck_assert_uint_ne(id[0], id[1]);
        dispatch_until(cella, &seen.done);
        ck_assert_uint_eq(seen.ids[0], id[2]);
        ck_assert_uint_eq(seen.ids[1], id[1]);
        ck_assert_uint_eq(seen.ids[2], id[0]);
        stop();
}
END_TEST

/* Kernel: reads A, B and a cancel of A; answers A (ECANCELED) and B anyway. */
static void run_cancel(Kernel *k)
{
        ChannelFrame a, b, c;
        int fds[CHANNEL_FDS_MAX];

        K_ASSERT(k_recv(k, &a, fds) == 0);
        K_ASSERT(k_recv(k, &b, fds) == 0);
        K_ASSERT(k_recv(k, &c, fds) == 0);
        K_ASSERT(c.flags == CHANNEL_FLAG_CANCEL);
        K_ASSERT(c.request_id == a.request_id);
        K_ASSERT(c.opcode == a.opcode);
        K_ASSERT(c.body_len == 0);
        k_error(k, &a, ECANCELED, "cancelled");
        k_empty_reply(k, &b);
        while (k_recv(k, &a, fds) == 0)
                ;
}

START_TEST(test_cancel)
{
        Seen seen = {.want = 1};
        uint64_t a, b;

        start(run_cancel);
        ck_assert_int_eq(cella_call_async(cella, CELLA_OP_BUS_UNSUBSCRIBE, NULL, 0, NULL, 0,
                                          on_reply, &seen, &a),
                         0);
        ck_assert_int_eq(
                cella_call_async(cella, CELLA_OP_BUS_SEND, NULL, 0, NULL, 0, on_reply, &seen, &b),
                0);
        ck_assert_int_eq(cella_cancel(cella, a), 0);
        ck_assert_int_eq(cella_cancel(cella, a), -ENOENT);
        ck_assert_int_eq(cella_cancel(cella, 12345), -ENOENT);
        dispatch_until(cella, &seen.done);
        /* Only B's callback ran; A's late reply was dropped. */
        ck_assert_uint_eq(seen.n, 1);
        ck_assert_uint_eq(seen.ids[0], b);
        ck_assert_int_eq(seen.errors[0], 0);
        ck_assert_int_eq(cella_cancel(cella, b), -ENOENT);
        ck_assert_int_eq(cella_dispatch(cella), 0);
        stop();
        ck_assert_uint_eq(seen.n, 1);
}
END_TEST

/* Kernel: an async request X, then a sync one Y; while Y waits it sends events and
 * X's reply, then Y's reply. */
static void run_interleave(Kernel *k)
{
        ChannelFrame x, y;
        int fds[CHANNEL_FDS_MAX];
        Cella__V1__BusMessageEvent bus = CELLA__V1__BUS_MESSAGE_EVENT__INIT;
        Cella__V1__PermRevokedEvent rev = CELLA__V1__PERM_REVOKED_EVENT__INIT;
        Cella__V1__MemoryPressureEvent mem = CELLA__V1__MEMORY_PRESSURE_EVENT__INIT;
        Cella__V1__SystemInfoReply info = CELLA__V1__SYSTEM_INFO_REPLY__INIT;

        K_ASSERT(k_recv(k, &x, fds) == 0);
        K_ASSERT(k_recv(k, &y, fds) == 0);
        K_ASSERT(y.opcode == CELLA_OP_SYSTEM_INFO);

        k_timer_event(k, 1);
        bus.topic = "clock.tick";
        bus.sender = "org.test.clock";
        bus.data = (ProtobufCBinaryData){.len = 3, .data = (uint8_t *)"t\0k"};
        bus.reply_token = 5;
        k_event(k, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGE, &bus.base);
        k_empty_reply(k, &x);
        rev.permission = "location";
        rev.reason = "user";
        k_event(k, CELLA__V1__OPCODE__OPCODE_EVENT_PERM_REVOKED, &rev.base);
        mem.level = CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_CRITICAL;
        mem.current_bytes = 60 << 20;
        k_event(k, CELLA__V1__OPCODE__OPCODE_EVENT_MEMORY_PRESSURE, &mem.base);
        k_send(k, 0x8999, CHANNEL_FLAG_EVENT, 0, NULL, NULL, 0); /* from a newer kernel */
        info.cella_version = "9.9";
        k_reply(k, &y, &info.base);
        while (k_recv(k, &x, fds) == 0)
                ;
}

typedef struct Events {
        unsigned n;
        uint16_t opcodes[2048];
        bool decoded[2048];
        uint64_t cookie;
        char topic[64], sender[64], perm[64];
        size_t bus_len;
        uint64_t reply_token;
        CellaMemoryLevel level;
        bool done;
        unsigned want;
} Events;

static void on_event(Cella *c, const CellaEvent *ev, void *userdata)
{
        Events *e = userdata;

        ck_assert_uint_lt(e->n, ELEMENTSOF(e->opcodes));
        e->opcodes[e->n] = ev->opcode;
        e->decoded[e->n] = ev->decoded;
        e->n++;
        if (e->n >= e->want)
                e->done = true;
        if (!ev->decoded)
                return;
        switch (ev->opcode) {
        case CELLA_EVENT_TIMER_FIRED:
                e->cookie = ev->timer.cookie;
                break;
        case CELLA_EVENT_BUS_MESSAGE:
                snprintf(e->topic, sizeof(e->topic), "%s", ev->bus.topic);
                snprintf(e->sender, sizeof(e->sender), "%s", ev->bus.sender);
                e->bus_len = ev->bus.len;
                e->reply_token = ev->bus.reply_token;
                break;
        case CELLA_EVENT_PERM_REVOKED:
                snprintf(e->perm, sizeof(e->perm), "%s", ev->perm_revoked.permission);
                break;
        case CELLA_EVENT_MEMORY_PRESSURE:
                e->level = ev->memory.level;
                break;
        }
}

START_TEST(test_events_during_sync)
{
        Events ev = {.want = 5};
        Seen seen = {.want = 1};
        CellaSystemInfo *info = NULL;
        uint64_t x;

        start(run_interleave);
        ck_assert_int_eq(cella_on_event(cella, on_event, &ev), 0);
        ck_assert_int_eq(cella_call_async(cella, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0, on_reply,
                                          &seen, &x),
                         0);
        ck_assert_int_eq(cella_system_info(cella, &info), 0);
        ck_assert_str_eq(info->cella_version, "9.9");
        cella_free(info);

        /* Nothing ran during the sync call; all of it waits for dispatch. */
        ck_assert_uint_eq(ev.n, 0);
        ck_assert_uint_eq(seen.n, 0);
        ck_assert_int_eq(cella_wait(cella, 0), 1);
        ck_assert_int_eq(cella_dispatch(cella), 6);
        ck_assert_uint_eq(seen.n, 1);
        ck_assert_uint_eq(seen.ids[0], x);

        /* In the order the kernel sent them. */
        ck_assert_uint_eq(ev.n, 5);
        ck_assert_uint_eq(ev.opcodes[0], CELLA_EVENT_TIMER_FIRED);
        ck_assert_uint_eq(ev.opcodes[1], CELLA_EVENT_BUS_MESSAGE);
        ck_assert_uint_eq(ev.opcodes[2], CELLA_EVENT_PERM_REVOKED);
        ck_assert_uint_eq(ev.opcodes[3], CELLA_EVENT_MEMORY_PRESSURE);
        ck_assert_uint_eq(ev.opcodes[4], 0x8999);
        ck_assert(ev.decoded[0] && ev.decoded[1] && ev.decoded[2] && ev.decoded[3]);
        ck_assert(!ev.decoded[4]);
        ck_assert_uint_eq(ev.cookie, 1);
        ck_assert_str_eq(ev.topic, "clock.tick");
        ck_assert_str_eq(ev.sender, "org.test.clock");
        ck_assert_uint_eq(ev.bus_len, 3);
        ck_assert_uint_eq(ev.reply_token, 5);
        ck_assert_str_eq(ev.perm, "location");
        ck_assert_int_eq(ev.level, CELLA_MEMORY_CRITICAL);

        ck_assert_int_eq(cella_dispatch(cella), 0);
        stop();
}
END_TEST

/* Kernel: reads async A, async B and a synchronous C, then dies without answering
 * (the old cellad); the new one writes event.kernel_restarted first, then answers
 * B and C, which it found unread in the channel (replies the app must drop: it
 * failed both already), then serves as usual. */
static void run_restart(Kernel *k)
{
        Cella__V1__KernelRestartedEvent ev = CELLA__V1__KERNEL_RESTARTED_EVENT__INIT;
        Cella__V1__SystemTimeReply t = CELLA__V1__SYSTEM_TIME_REPLY__INIT;
        ChannelFrame a, b, c;
        int fds[CHANNEL_FDS_MAX];

        K_ASSERT(k_recv(k, &a, fds) == 0);
        K_ASSERT(k_recv(k, &b, fds) == 0);
        K_ASSERT(k_recv(k, &c, fds) == 0);
        ev.adopted_ms = 1700000000123;
        k_event(k, CELLA__V1__OPCODE__OPCODE_EVENT_KERNEL_RESTARTED, &ev.base);
        t.monotonic_ns = 99;
        k_reply(k, &b, &t.base);
        serve_one(k, &c, NULL);
        run_serve(k);
}

/* What the app saw, in the order it saw it: "reply <id> <error>", "event <opcode>". */
typedef struct Trace {
        char lines[8][160];
        unsigned n;
        int64_t adopted_ms;
} Trace;

static void trace_reply(Cella *c, CellaReply *reply, void *userdata)
{
        Trace *t = userdata;

        ck_assert_uint_lt(t->n, ELEMENTSOF(t->lines));
        snprintf(t->lines[t->n++], sizeof t->lines[0], "reply %" PRIu64 " %d %s", reply->request_id,
                 reply->error, reply->error_message);
}

static void trace_event(Cella *c, const CellaEvent *ev, void *userdata)
{
        Trace *t = userdata;

        ck_assert_uint_lt(t->n, ELEMENTSOF(t->lines));
        snprintf(t->lines[t->n++], sizeof t->lines[0], "event %#x", ev->opcode);
        ck_assert(ev->decoded);
        if (ev->opcode == CELLA_EVENT_KERNEL_RESTARTED)
                t->adopted_ms = ev->kernel_restarted.adopted_ms;
}

START_TEST(test_kernel_restarted)
{
        Trace t = {};
        CellaSystemInfo *info = NULL;
        char want[160];
        uint64_t a, b;

        start(run_restart);
        ck_assert_int_eq(cella_on_event(cella, trace_event, &t), 0);
        ck_assert_int_eq(cella_call_async(cella, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0,
                                          trace_reply, &t, &a),
                         0);
        ck_assert_int_eq(cella_call_async(cella, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0,
                                          trace_reply, &t, &b),
                         0);
        /* No timeout: without the event this would wait for ever. */
        ck_assert_int_eq(cella_system_info(cella, &info), -ECONNRESET);
        ck_assert_ptr_null(info);
        ck_assert_uint_eq(t.n, 0); /* a synchronous call runs no callback */

        /* The failures of A and B, in the order they were sent, then the event; the
         * new kernel's replies for B and C are dropped. */
        while (t.n < 3) {
                ck_assert_int_eq(cella_wait(cella, 5000), 1);
                ck_assert_int_ge(cella_dispatch(cella), 0);
        }
        snprintf(want, sizeof want, "reply %" PRIu64 " %d %s", a, -ECONNRESET,
                 CELLA_E_KERNEL_RESTARTED);
        ck_assert_str_eq(t.lines[0], want);
        snprintf(want, sizeof want, "reply %" PRIu64 " %d %s", b, -ECONNRESET,
                 CELLA_E_KERNEL_RESTARTED);
        ck_assert_str_eq(t.lines[1], want);
        ck_assert_str_eq(t.lines[2], "event 0x8006");
        ck_assert_int_eq(t.adopted_ms, 1700000000123);

        /* Calls after the event are the new kernel's, answered; the stale replies
         * before theirs were dropped, never delivered. */
        ck_assert_int_eq(cella_system_info(cella, &info), 0);
        ck_assert_str_eq(info->os_name, "Linux");
        cella_free(info);
        ck_assert_int_eq(cella_dispatch(cella), 0);
        ck_assert_uint_eq(t.n, 3);
        stop();
}
END_TEST

/* Kernel: reads CELLA_MAX_PENDING requests, then answers them all. */
static void run_pending(Kernel *k)
{
        static ChannelFrame f[CELLA_MAX_PENDING];
        int fds[CHANNEL_FDS_MAX];

        for (unsigned i = 0; i < CELLA_MAX_PENDING; i++)
                K_ASSERT(k_recv(k, &f[i], fds) == 0);
        for (unsigned i = 0; i < CELLA_MAX_PENDING; i++)
                k_empty_reply(k, &f[i]);
        run_serve(k);
}

START_TEST(test_pending_limit)
{
        Seen seen = {.want = CELLA_MAX_PENDING};
        CellaTime t;
        uint64_t id;

        start(run_pending);
        for (unsigned i = 0; i < CELLA_MAX_PENDING; i++)
                ck_assert_int_eq(cella_call_async(cella, CELLA_OP_BUS_SEND, NULL, 0, NULL, 0,
                                                  on_reply, &seen, &id),
                                 0);
        ck_assert_int_eq(
                cella_call_async(cella, CELLA_OP_BUS_SEND, NULL, 0, NULL, 0, on_reply, &seen, &id),
                -EBUSY);
        ck_assert_int_eq(cella_system_time(cella, &t), -EBUSY);
        dispatch_until(cella, &seen.done);
        ck_assert_uint_eq(seen.n, CELLA_MAX_PENDING);
        /* Room again. */
        ck_assert_int_eq(cella_system_time(cella, &t), 0);
        stop();
}
END_TEST

/* Kernel: reads two requests, then hangs up. */
static void run_hangup(Kernel *k)
{
        ChannelFrame f;
        int fds[CHANNEL_FDS_MAX];

        K_ASSERT(k_recv(k, &f, fds) == 0);
        K_ASSERT(k_recv(k, &f, fds) == 0);
        k->fd = safe_close(k->fd);
}

START_TEST(test_hangup)
{
        Seen seen = {.want = 1};
        CellaSystemInfo *info = NULL;
        CellaTime t;
        uint64_t id;
        int r;

        start(run_hangup);
        ck_assert_int_eq(cella_call_async(cella, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0, on_reply,
                                          &seen, &id),
                         0);
        ck_assert_int_eq(cella_system_info(cella, &info), -ECONNRESET);
        ck_assert_ptr_null(info);
        /* Broken for good, for every call. */
        ck_assert_int_eq(cella_system_time(cella, &t), -ECONNRESET);
        r = cella_call_async(cella, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0, on_reply, &seen, &id);
        ck_assert_int_eq(r, -ECONNRESET);
        /* The outstanding async request hears of it once, from dispatch. */
        ck_assert_int_eq(cella_dispatch(cella), -ECONNRESET);
        ck_assert_uint_eq(seen.n, 1);
        ck_assert_int_eq(seen.errors[0], -ECONNRESET);
        ck_assert_int_eq(cella_dispatch(cella), -ECONNRESET);
        ck_assert_uint_eq(seen.n, 1);
        stop();
}
END_TEST

static void run_close_at_once(Kernel *k)
{
        k->fd = safe_close(k->fd);
}

START_TEST(test_hangup_send)
{
        struct pollfd p;
        CellaTime t;
        uint64_t id;

        start(run_close_at_once);
        p = (struct pollfd){.fd = cella_fd(cella), .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        ck_assert(p.revents & POLLHUP);
        ck_assert_int_eq(
                cella_call_async(cella, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0, NULL, NULL, &id),
                -EPIPE);
        ck_assert_int_eq(cella_system_time(cella, &t), -EPIPE);
        stop();
}
END_TEST

/* Kernel: reads a request, answers nothing until a cancel comes, then answers late
 * and sends an event. */
static void run_late(Kernel *k)
{
        ChannelFrame f, c;
        int fds[CHANNEL_FDS_MAX];

        K_ASSERT(k_recv(k, &f, fds) == 0);
        K_ASSERT(k_recv(k, &c, fds) == 0);
        K_ASSERT(c.flags == CHANNEL_FLAG_CANCEL && c.request_id == f.request_id);
        k_empty_reply(k, &f);
        k_timer_event(k, 2);
        run_serve(k);
}

START_TEST(test_timeout)
{
        Events ev = {.want = 1};
        CellaSystemInfo *info = NULL;

        start(run_late);
        ck_assert_int_eq(cella_on_event(cella, on_event, &ev), 0);
        ck_assert_int_eq(cella_set_timeout(cella, 100), 0);
        ck_assert_int_eq(cella_system_info(cella, &info), -ETIMEDOUT);
        /* The late reply is dropped, the event is not. */
        dispatch_until(cella, &ev.done);
        ck_assert_uint_eq(ev.cookie, 2);
        ck_assert_int_eq(cella_system_info(cella, &info), 0);
        cella_free(info);
        stop();
}
END_TEST

/* Kernel: answers each request late, an event first, so that a synchronous call
 * finds nothing when it first reads. */
static void run_slow(Kernel *k)
{
        for (uint64_t i = 0;; i++) {
                ChannelFrame f;
                int fds[CHANNEL_FDS_MAX];

                if (k_recv(k, &f, fds) < 0)
                        return;
                usleep(20 * 1000);
                k_timer_event(k, 10 + i);
                usleep(20 * 1000);
                serve_one(k, &f, NULL);
        }
}

/* A synchronous call without a timeout waits in a blocking read; on a channel the
 * app made non-blocking it waits in poll() instead. Both get the reply, and the
 * event that came first is kept for cella_dispatch(). */
START_TEST(test_sync_wait)
{
        Events ev = {.want = 2};
        CellaTime t;

        start(run_slow);
        ck_assert_int_eq(cella_on_event(cella, on_event, &ev), 0);
        ck_assert_int_eq(cella_system_time(cella, &t), 0);
        ck_assert_int_eq(t.monotonic_ns, 42);
        ck_assert_int_eq(fcntl(cella_fd(cella), F_SETFL, O_NONBLOCK), 0);
        ck_assert_int_eq(cella_system_time(cella, &t), 0);
        ck_assert_int_eq(t.monotonic_ns, 42);
        dispatch_until(cella, &ev.done);
        ck_assert_uint_eq(ev.cookie, 11);
        stop();
}
END_TEST

/* Kernel: sends 100 events, then the sync request's reply. */
static void run_many_events(Kernel *k)
{
        ChannelFrame f;
        int fds[CHANNEL_FDS_MAX];

        K_ASSERT(k_recv(k, &f, fds) == 0);
        for (int i = 0; i < 100; i++)
                k_timer_event(k, (uint64_t)i);
        k_empty_reply(k, &f);
        run_serve(k);
}

START_TEST(test_dispatch_bound)
{
        Events ev = {.want = 100};

        start(run_many_events);
        ck_assert_int_eq(cella_on_event(cella, on_event, &ev), 0);
        ck_assert_int_eq(cella_bus_unsubscribe(cella, 1), 0);
        ck_assert_int_eq(cella_dispatch(cella), (int)CELLA_DISPATCH_MAX);
        ck_assert_int_eq(cella_dispatch(cella), 100 - (int)CELLA_DISPATCH_MAX);
        ck_assert_int_eq(cella_dispatch(cella), 0);
        ck_assert_uint_eq(ev.n, 100);
        ck_assert_uint_eq(ev.cookie, 99);
        stop();
}
END_TEST

/* Kernel: floods CELLA_QUEUE_MAX + 8 events before answering. */
static void run_flood(Kernel *k)
{
        ChannelFrame f;
        int fds[CHANNEL_FDS_MAX];

        K_ASSERT(k_recv(k, &f, fds) == 0);
        for (unsigned i = 0; i < CELLA_QUEUE_MAX + 8; i++)
                k_timer_event(k, i);
        k_empty_reply(k, &f);
        run_serve(k);
}

START_TEST(test_queue_bound)
{
        Events ev = {.want = CELLA_QUEUE_MAX + 8};
        CellaTime t;

        start(run_flood);
        ck_assert_int_eq(cella_on_event(cella, on_event, &ev), 0);
        /* The sync call keeps at most CELLA_QUEUE_MAX frames, then gives up. */
        ck_assert_int_eq(cella_bus_unsubscribe(cella, 1), -ENOBUFS);
        /* Nothing is lost: dispatch delivers every event; the late reply is dropped. */
        dispatch_until(cella, &ev.done);
        ck_assert_uint_eq(ev.n, CELLA_QUEUE_MAX + 8);
        ck_assert_int_eq(cella_system_time(cella, &t), 0);
        ck_assert_uint_eq(kernel->n_cancels, 1);
        stop();
}
END_TEST

/* Kernel: sends garbage. */
static void run_garbage(Kernel *k)
{
        ChannelFrame f;
        int fds[CHANNEL_FDS_MAX];

        K_ASSERT(k_recv(k, &f, fds) == 0);
        K_ASSERT(send(k->fd, "garbage, not a frame......", 26, 0) == 26);
        while (k_recv(k, &f, fds) == 0)
                ;
}

START_TEST(test_malformed_from_kernel)
{
        Seen seen = {.want = 1};
        uint64_t id;

        start(run_garbage);
        ck_assert_int_eq(cella_call_async(cella, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0, on_reply,
                                          &seen, &id),
                         0);
        for (int i = 0; i < 500 && !seen.done; i++) {
                int r;

                ck_assert_int_ge(cella_wait(cella, 10), 0);
                r = cella_dispatch(cella);
                if (r < 0) {
                        ck_assert_int_eq(r, -EPROTONOSUPPORT);
                        break;
                }
        }
        ck_assert_uint_eq(seen.n, 1);
        ck_assert_int_eq(seen.errors[0], -EPROTONOSUPPORT);
        stop();
}
END_TEST

static void on_perm(Cella *c, CellaReply *reply, void *userdata)
{
        CellaPermState st;
        bool one_time = true;

        ck_assert_int_eq(cella_perm_request_result(reply, &st, &one_time), 0);
        ck_assert_int_eq(st, CELLA_PERM_GRANTED);
        ck_assert(!one_time);
        on_reply(c, reply, userdata);
}

static void on_bus(Cella *c, CellaReply *reply, void *userdata)
{
        CellaBusReply *br = NULL;
        CellaPermState st;

        ck_assert_int_eq(cella_perm_request_result(reply, &st, NULL), -EINVAL);
        ck_assert_int_eq(cella_bus_request_result(reply, &br), 0);
        ck_assert_mem_eq(br->data, "PING", 4);
        cella_free(br);
        /* A callback may make synchronous calls. */
        ck_assert_int_eq(cella_bus_send(c, "org.test.other", "x", 1, NULL), 0);
        on_reply(c, reply, userdata);
}

START_TEST(test_async_typed)
{
        Seen seen = {.want = 2};
        Events ev = {.want = 1};
        uint64_t a, b, t;

        start(run_serve);
        ck_assert_int_eq(cella_on_event(cella, on_event, &ev), 0);
        ck_assert_int_eq(cella_perm_request_async(cella, "location", NULL, on_perm, &seen, &a), 0);
        ck_assert_int_eq(cella_bus_request_async(cella, "org.test.other", "upper", "ping", 4, NULL,
                                                 1000, on_bus, &seen, &b),
                         0);
        ck_assert_int_eq(cella_perm_request_async(cella, "", NULL, on_perm, &seen, &a), -EINVAL);
        dispatch_until(cella, &seen.done);
        ck_assert_uint_eq(seen.n, 2);

        /* A timer that fires at once: the reply, then the event. */
        ck_assert_int_eq(cella_timer_create(cella, 0, 0, 55, &t), 0);
        dispatch_until(cella, &ev.done);
        ck_assert_uint_eq(ev.cookie, 55);
        stop();
}
END_TEST

START_TEST(test_open)
{
        Cella *c = NULL;
        int sv[2], p[2], s;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(s, 0);

        setenv("CELLA_FD", "abc", 1);
        ck_assert_int_eq(cella_open(&c), -EINVAL);
        setenv("CELLA_FD", "3x", 1);
        ck_assert_int_eq(cella_open(&c), -EINVAL);
        setenv("CELLA_FD", "9999", 1);
        ck_assert_int_eq(cella_open(&c), -EBADF);
        {
                char n[16];

                snprintf(n, sizeof(n), "%d", p[0]);
                setenv("CELLA_FD", n, 1);
                ck_assert_int_eq(cella_open(&c), -ENOTSOCK);
                snprintf(n, sizeof(n), "%d", s);
                setenv("CELLA_FD", n, 1);
                ck_assert_int_eq(cella_open(&c), -EPROTOTYPE);
                snprintf(n, sizeof(n), "%d", sv[0]);
                setenv("CELLA_FD", n, 1);
                ck_assert_int_eq(cella_open(&c), 0);
        }
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(cella_fd(c), sv[0]);
        ck_assert_int_eq(fcntl(sv[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_int_eq(cella_wait(c, 0), 0);
        ck_assert_int_eq(cella_dispatch(c), 0);
        c = cella_close(c); /* closes sv[0] */
        ck_assert_ptr_null(cella_close(NULL));
        unsetenv("CELLA_FD");

        safe_close(sv[1]);
        safe_close(p[0]);
        safe_close(p[1]);
        safe_close(s);
}
END_TEST

/* ---- bus.publish_batch and batched deliveries ---- */

typedef struct BusSeen {
        unsigned n;
        char topics[8][32];
        char data[8][32];
        unsigned undecoded; /* CELLA_EVENT_BUS_MESSAGES that did not decode */
        bool done;
        unsigned want;
        uint64_t delivered; /* from the async reply */
        int reply_error;
        bool replied;
} BusSeen;

static void on_bus_event(Cella *c, const CellaEvent *ev, void *userdata)
{
        BusSeen *s = userdata;
        Cella__V1__BusMessageEvent *m;

        if (ev->opcode == CELLA_EVENT_BUS_MESSAGES) {
                ck_assert(!ev->decoded);
                s->undecoded++;
                return;
        }
        ck_assert_uint_eq(ev->opcode, CELLA_EVENT_BUS_MESSAGE);
        ck_assert(ev->decoded);
        ck_assert_uint_eq(ev->bus.subscription_id, 11);
        ck_assert_str_eq(ev->bus.sender, "org.test.self");
        if (s->n < ELEMENTSOF(s->topics)) {
                snprintf(s->topics[s->n], sizeof(s->topics[0]), "%s", ev->bus.topic);
                snprintf(s->data[s->n], sizeof(s->data[0]), "%.*s", (int)ev->bus.len,
                         (const char *)ev->bus.data);
        }
        /* The event's body is that message's own BusMessageEvent. */
        m = cella__v1__bus_message_event__unpack(NULL, ev->body_len, ev->body);
        ck_assert_ptr_nonnull(m);
        ck_assert_str_eq(m->topic, ev->bus.topic);
        ck_assert_uint_eq(m->data.len, ev->bus.len);
        cella__v1__bus_message_event__free_unpacked(m, NULL);
        if (++s->n >= s->want)
                s->done = true;
}

static void on_batch_reply(Cella *c, CellaReply *reply, void *userdata)
{
        BusSeen *s = userdata;

        s->reply_error = cella_bus_publish_batch_result(reply, &s->delivered);
        s->replied = true;
}

START_TEST(test_bus_publish_batch)
{
        static char big[40000];
        CellaBusMessage msgs[3] = {
                {.topic = "notes.a", .data = "one", .len = 3, .content_type = "text/plain"},
                {.topic = "notes.b", .data = "two!", .len = 4},
                {.topic = "notes.a", .data = NULL, .len = 0, .content_type = ""},
        };
        _cleanup_free_ CellaBusMessage *many = calloc(CELLA_BUS_BATCH_MAX + 1, sizeof(*many));
        CellaBusMessage bad[2];
        BusSeen seen = {.want = 3};
        uint64_t delivered = 0, sub;
        CellaReply *reply = NULL;

        ck_assert_ptr_nonnull(many);
        start(run_serve);
        ck_assert_int_eq(cella_on_event(cella, on_bus_event, &seen), 0);

        /* Synchronous: the reply's count, then each message as its own event, in order. */
        ck_assert_int_eq(cella_bus_publish_batch(cella, msgs, 3, &delivered), 0);
        ck_assert_uint_eq(delivered, 7);
        dispatch_until(cella, &seen.done);
        ck_assert_uint_eq(seen.n, 3);
        ck_assert_str_eq(seen.topics[0], "notes.a");
        ck_assert_str_eq(seen.data[0], "one");
        ck_assert_str_eq(seen.topics[1], "notes.b");
        ck_assert_str_eq(seen.data[1], "two!");
        ck_assert_str_eq(seen.topics[2], "notes.a");
        ck_assert_str_eq(seen.data[2], "");
        ck_assert_uint_eq(seen.undecoded, 0);
        seen.want = 4;
        seen.done = false;
        ck_assert_int_eq(cella_bus_publish_batch(cella, msgs, 1, NULL), 0);
        dispatch_until(cella, &seen.done);

        /* Asynchronous. */
        seen = (BusSeen){.want = 2};
        ck_assert_int_eq(
                cella_bus_publish_batch_async(cella, msgs + 1, 2, on_batch_reply, &seen, NULL), 0);
        dispatch_until(cella, &seen.done);
        dispatch_until(cella, &seen.replied);
        ck_assert_int_eq(seen.reply_error, 0);
        ck_assert_uint_eq(seen.delivered, 4);
        ck_assert_str_eq(seen.topics[0], "notes.b");
        ck_assert_str_eq(seen.topics[1], "notes.a");

        /* The kernel's refusal of one topic is the call's error. */
        bad[0] = msgs[0];
        bad[1] = (CellaBusMessage){.topic = "secret.x", .data = "s", .len = 1};
        ck_assert_int_eq(cella_bus_publish_batch(cella, bad, 2, &delivered), -EACCES);
        ck_assert_int_eq(cella_call(cella, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0, &reply), 0);
        ck_assert_int_eq(cella_bus_publish_batch_result(reply, NULL), -EINVAL); /* not ours */
        reply = cella_reply_free(reply);

        /* Bounds, checked before anything is sent. */
        ck_assert_int_eq(cella_bus_publish_batch(cella, msgs, 0, NULL), -EINVAL);
        ck_assert_int_eq(cella_bus_publish_batch(cella, NULL, 1, NULL), -EINVAL);
        for (size_t i = 0; i <= CELLA_BUS_BATCH_MAX; i++)
                many[i] = (CellaBusMessage){.topic = "t", .data = "x", .len = 1};
        ck_assert_int_eq(cella_bus_publish_batch(cella, many, CELLA_BUS_BATCH_MAX + 1, NULL),
                         -EINVAL);
        bad[1] = (CellaBusMessage){.topic = "", .data = "s", .len = 1};
        ck_assert_int_eq(cella_bus_publish_batch(cella, bad, 2, NULL), -EINVAL);
        bad[1] = (CellaBusMessage){.topic = "t", .data = NULL, .len = 1};
        ck_assert_int_eq(cella_bus_publish_batch(cella, bad, 2, NULL), -EINVAL);
        bad[1] = (CellaBusMessage){.topic = "t", .data = big, .len = CELLA_PAYLOAD_MAX + 1};
        ck_assert_int_eq(cella_bus_publish_batch(cella, bad, 2, NULL), -EMSGSIZE);
        bad[0] = bad[1] = (CellaBusMessage){.topic = "t", .data = big, .len = sizeof(big)};
        ck_assert_int_eq(cella_bus_publish_batch_async(cella, bad, 2, NULL, NULL, NULL), -EMSGSIZE);

        /* cella_bus_batch_fit(): what fits one call. */
        ck_assert_uint_eq(cella_bus_batch_fit(bad, 2), 1);
        ck_assert_uint_eq(cella_bus_batch_fit(many, CELLA_BUS_BATCH_MAX + 1), CELLA_BUS_BATCH_MAX);
        ck_assert_uint_eq(cella_bus_batch_fit(NULL, 3), 0);
        ck_assert_uint_eq(cella_bus_batch_fit(msgs, 0), 0);
        ck_assert_int_eq(cella_bus_publish_batch(cella, bad, cella_bus_batch_fit(bad, 2), NULL), 0);
        ck_assert_int_eq(cella_bus_publish_batch(cella, many, CELLA_BUS_BATCH_MAX, &delivered), 0);
        ck_assert_uint_eq(delivered, CELLA_BUS_BATCH_MAX);
        /* At the body's bound: the largest payload (field: 1 tag + 3 length + 3 topic
         * + 1 tag + 3 length + 64512 = 64523 bytes) leaves 1013 bytes, which a second
         * message of 1004 bytes fills exactly (1 + 2 + 3 + 1 + 2 + 1004). */
        {
                static char payload[CELLA_PAYLOAD_MAX];
                CellaBusMessage two[2] = {
                        {.topic = "t", .data = payload, .len = sizeof(payload)},
                        {.topic = "t", .data = payload, .len = 1004},
                };

                ck_assert_uint_eq(cella_bus_batch_fit(two, 2), 2);
                ck_assert_int_eq(cella_bus_publish_batch(cella, two, 2, &delivered), 0);
                ck_assert_uint_eq(delivered, CELLA_PAYLOAD_MAX + 1004);
                two[1].len++;
                ck_assert_uint_eq(cella_bus_batch_fit(two, 2), 1);
                ck_assert_int_eq(cella_bus_publish_batch(cella, two, 2, NULL), -EMSGSIZE);
        }

        /* libcella subscribes with batch = true (the kernel asserts it). The kernel
         * sends a tick after its reply: a call answered after it means the tick was
         * sent before we hang up (it stays queued, never dispatched). */
        ck_assert_int_eq(cella_bus_subscribe(cella, "clock.*", &sub), 0);
        ck_assert_int_eq(cella_call(cella, CELLA_OP_SYSTEM_TIME, NULL, 0, NULL, 0, &reply), 0);
        reply = cella_reply_free(reply);
        stop();
}
END_TEST

/* Kernel: a batched event that does not decode, then one of two messages. */
static void run_bad_batch(Kernel *k)
{
        Cella__V1__BusMessageEvent m[2] = {CELLA__V1__BUS_MESSAGE_EVENT__INIT,
                                           CELLA__V1__BUS_MESSAGE_EVENT__INIT};
        Cella__V1__BusMessageEvent *ptr[2] = {&m[0], &m[1]};
        Cella__V1__BusMessagesEvent ev = CELLA__V1__BUS_MESSAGES_EVENT__INIT;
        static const uint8_t junk[] = {0x0a, 0x05, 0x12, 0x01};
        ChannelFrame f;
        int fds[CHANNEL_FDS_MAX];

        K_ASSERT(channel_send(k->fd,
                              &(ChannelFrame){.opcode = CELLA_EVENT_BUS_MESSAGES,
                                              .flags = CHANNEL_FLAG_EVENT,
                                              .body = junk,
                                              .body_len = sizeof(junk)},
                              NULL, 0, 0) == 0);
        for (int i = 0; i < 2; i++) {
                m[i].subscription_id = 11;
                m[i].topic = i ? "b" : "a";
                m[i].sender = "org.test.self";
                m[i].data = (ProtobufCBinaryData){.len = 1, .data = (uint8_t *)(i ? "2" : "1")};
        }
        ev.n_messages = 2;
        ev.messages = ptr;
        k_event(k, CELLA__V1__OPCODE__OPCODE_EVENT_BUS_MESSAGES, &ev.base);
        while (k_recv(k, &f, fds) == 0)
                ;
}

START_TEST(test_bus_batched_event_bad)
{
        BusSeen seen = {.want = 2};

        start(run_bad_batch);
        ck_assert_int_eq(cella_on_event(cella, on_bus_event, &seen), 0);
        dispatch_until(cella, &seen.done);
        /* The bad frame reached the callback whole, undecoded; the channel carried on. */
        ck_assert_uint_eq(seen.undecoded, 1);
        ck_assert_str_eq(seen.topics[0], "a");
        ck_assert_str_eq(seen.data[1], "2");
        stop();
}
END_TEST

static Suite *libcella_suite(void)
{
        Suite *s = suite_create("libcella");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_sync_calls);
        tcase_add_test(tc, test_errors);
        tcase_add_test(tc, test_fd_passing);
        tcase_add_test(tc, test_net_connect);
        tcase_add_test(tc, test_out_of_order);
        tcase_add_test(tc, test_cancel);
        tcase_add_test(tc, test_events_during_sync);
        tcase_add_test(tc, test_kernel_restarted);
        tcase_add_test(tc, test_pending_limit);
        tcase_add_test(tc, test_hangup);
        tcase_add_test(tc, test_hangup_send);
        tcase_add_test(tc, test_timeout);
        tcase_add_test(tc, test_sync_wait);
        tcase_add_test(tc, test_dispatch_bound);
        tcase_add_test(tc, test_queue_bound);
        tcase_add_test(tc, test_malformed_from_kernel);
        tcase_add_test(tc, test_async_typed);
        tcase_add_test(tc, test_open);
        tcase_add_test(tc, test_bus_publish_batch);
        tcase_add_test(tc, test_bus_batched_event_bad);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(libcella_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
