/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the broker: arbitrary datagrams into an attached app's
 * channel, as a hostile app would send them, through the whole path (framing,
 * decoder, quota, rights, rate limit, every call's handler, replies, detach).
 *
 * Input: a sequence of records [u8 kind][u16 length, little-endian][length bytes];
 * each is one datagram on the app's end of the socketpair. kind bit 0 attaches one
 * fd (a /dev/null), bit 1 makes the record's first 24 bytes a valid header (magic,
 * body_len and n_fds fixed up, so the body and opcode get fuzzed rather than the
 * framing). After each datagram the loop runs and the app's end is drained. The app
 * is attached and detached per input: nothing may survive a detach.
 *
 * The manifest asks for no fs right (fs.open would create files; the keystore's
 * keystore.db and keystore.key are in the state directory, at most
 * keystore.keys_max keys) and no cgroup is
 * given (proc.signal finds nothing to signal); the host launches nothing, and its
 * prompts never answer (they are cancelled at detach). No audit log: it would grow
 * without bound over millions of inputs.
 *
 * Build: CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=false
 * Run:   build-fuzz/tests/fuzz/fuzz-broker tests/fuzz/corpus/broker
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "broker/broker.h"
#include "wire/channel.h"
#include "ipc/bus.h"
#include "policy/grants.h"
#include "policy/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DATAGRAMS_MAX 256u

static uv_loop_t loop;
static Grants *grants;
static Bus *bus;
static Broker *broker;
static Manifest *manifest;
static int null_fd;
static unsigned prompts_pending;

static int fake_launch(void *u, const char *caller, const char *target, bool *ret_running)
{
        *ret_running = true;
        return 0;
}

static void fake_notify(void *u, const char *app, const char *title, const char *body, int urg)
{
}

static int fake_prompt(void *u, const char *app, const char *right, const char *reason,
                       BrokerPromptDone done, void *done_ud)
{
        prompts_pending++;
        return 0;
}

static void fake_prompt_cancel(void *u, void *done_ud)
{
        if (prompts_pending == 0)
                abort(); /* cancelled a prompt that was never shown */
        prompts_pending--;
}

static const BrokerHost host = {
        .launch = fake_launch,
        .notify = fake_notify,
        .prompt = fake_prompt,
        .prompt_cancel = fake_prompt_cancel,
};

static void init(void)
{
        static const char json[] =
                "{\"id\":\"org.fuzz.app\",\"runtime\":\"native\",\"entry\":\"x\","
                "\"permissions\":[\"notify\",\"timer\",\"app.launch:org.fuzz.*\","
                "\"bus.publish:fuzz.*\",\"bus.subscribe:fuzz.**\",\"bus.send:org.fuzz.*\","
                "\"location\",\"camera\",\"system.admin\",\"keystore\","
                "\"ipc.sem:org.fuzz.app.**\",\"ipc.queue:org.fuzz.app.**\","
                "\"ipc.shm:org.fuzz.app.**\",\"ipc.pipe:org.fuzz.app.**\"]}";
        char dir[] = "/tmp/fuzz-broker-XXXXXX";
        const char *bad, *why;
        ManifestError err;
        BrokerOptions o = {};

        if (!mkdtemp(dir) || uv_loop_init(&loop) < 0 || grants_open(dir, &grants) < 0 ||
            bus_new(&bus) < 0 ||
            manifest_parse(json, sizeof json - 1, "fuzz", &manifest, &err) < 0 ||
            grants_install(grants, manifest, false, grants_now_ms(), &bad, &why) < 0)
                abort();
        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        o.loop = &loop;
        o.grants = grants;
        o.bus = bus;
        o.state_dir = dir;
        o.host = &host;
        o.rate_prompting = 1000000;
        o.burst_prompting = 1000000;
        o.rate_costly = 1000000;
        o.burst_costly = 1000000;
        if (null_fd < 0 || broker_new(&o, &broker) < 0)
                abort();
}

static void drain(int fd)
{
        static uint8_t buf[CHANNEL_DATAGRAM_MAX];
        int fds[CHANNEL_FDS_MAX];
        ChannelFrame f;
        int r;

        for (int i = 0; i < 4; i++)
                uv_run(&loop, UV_RUN_NOWAIT);
        while ((r = channel_recv(fd, &f, buf, fds, CHANNEL_FDS_MAX, MSG_DONTWAIT)) != -EAGAIN) {
                if (r == -ECONNRESET)
                        return;
                /* What the broker sends is always well-formed. */
                if (r < 0 || channel_frame_is_request(&f) || (f.flags & CHANNEL_FLAG_CANCEL))
                        abort();
                for (unsigned i = 0; i < f.n_fds; i++)
                        close(fds[i]);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static uint8_t dgram[CHANNEL_DATAGRAM_MAX];
        BrokerAppInfo info = {.pidfd = -1};
        BrokerAppStats st;
        BrokerApp *app;
        unsigned n = 0;
        int sv[2];

        if (!broker)
                init();
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        info.manifest = manifest;
        info.started_ms = grants_now_ms();
        if (broker_app_attach(broker, &info, sv[0], &app) < 0)
                abort();

        while (size >= 3 && n++ < DATAGRAMS_MAX) {
                uint8_t kind = data[0];
                size_t len = (size_t)data[1] | (size_t)data[2] << 8;
                struct iovec iov;
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int))];
                } u = {};
                struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

                data += 3;
                size -= 3;
                if (len > size)
                        len = size;
                memcpy(dgram, data, len);
                data += len;
                size -= len;
                if ((kind & 2) && len >= CHANNEL_HEADER_SIZE) {
                        ChannelFrame f = {
                                .opcode = (uint16_t)(dgram[2] | dgram[3] << 8),
                                .flags = dgram[4] & CHANNEL_FLAGS_KNOWN,
                                .body_len = len - CHANNEL_HEADER_SIZE,
                                .n_fds = kind & 1,
                        };

                        memcpy(&f.request_id, dgram + 8, sizeof f.request_id);
                        (void)channel_encode_header(&f, dgram);
                }
                iov = (struct iovec){.iov_base = dgram, .iov_len = len};
                if (kind & 1) {
                        struct cmsghdr *c;

                        mh.msg_control = u.buf;
                        mh.msg_controllen = sizeof u.buf;
                        c = CMSG_FIRSTHDR(&mh);
                        c->cmsg_level = SOL_SOCKET;
                        c->cmsg_type = SCM_RIGHTS;
                        c->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(c), &null_fd, sizeof(int));
                }
                if (sendmsg(sv[1], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN &&
                    errno != EPIPE && errno != ECONNRESET)
                        abort();
                drain(sv[1]);
        }

        broker_app_stats(app, &st);
        if (st.bad_frames > BROKER_BAD_FRAMES_MAX + 1 || st.outstanding > BROKER_OUTSTANDING_MAX ||
            (st.bad_frames > BROKER_BAD_FRAMES_MAX && !st.closed))
                abort();
        broker_app_detach(app);
        if (prompts_pending != 0)
                abort(); /* a prompt outlived its app */
        close(sv[1]);
        for (int i = 0; i < 4; i++)
                uv_run(&loop, UV_RUN_NOWAIT);
        /* Threadpool work of the detached app (fs.usage walks, proc.* calls) ends on
         * its own and frees itself in its callback: wait for it, so that nothing is
         * left in flight when the input is done. */
        for (int i = 0; i < 1000 && uv_loop_alive(&loop); i++)
                uv_run(&loop, UV_RUN_ONCE);
        return 0;
}
