/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fs.usage (proto/cella.proto "fs", docs/protocol.md "fs.usage"): the bytes an app
 * uses in its /data and /tmp. Moved out of fs.c, which holds fs.open.
 *
 * /data is measured by a walk (base/tree-usage.h, shared with the storage
 * migration) that adds up st_blocks * 512 over the app's data dir (du's measure),
 * with fstatat on directory fds, never following a symlink and
 * never leaving the data dir's filesystem, visiting at most USAGE_ENTRIES_MAX
 * entries USAGE_DEPTH_MAX levels deep. A tree larger than that is reported up to
 * the bound (a lower bound; the audit record says "truncated"). A file with several
 * hard links counts once per link.
 *
 * The walk is the costliest thing an app can make the kernel do: 33,000 files took
 * ~110 ms, and on the kernel's one loop a flood of fs.usage from one app delayed
 * every other app's calls by seconds. So it never runs on the loop:
 *
 * - It runs on libuv's threadpool (uv_queue_work()); the loop only opens the data
 *   dir (one open(2)) and answers.
 * - At most one walk per app is in flight. fs.usage calls that arrive meanwhile
 *   wait for that walk's figure: they are the app's own outstanding calls
 *   (BROKER_OUTSTANDING_MAX), as a perm.request waiting on the user is.
 * - The figure is kept and answered from the cache for USAGE_CACHE_MIN_MS, or for
 *   USAGE_COST_FACTOR times the CPU time the walk took if that is longer: however
 *   fast an app asks, its walks use at most 1/USAGE_COST_FACTOR of one CPU. The
 *   walk's CPU time (CLOCK_THREAD_CPUTIME_ID of the worker) is charged to the app:
 *   in the audit record of the call that started it ("walk_cpu_us") and in its
 *   counters (broker_app_charge_cpu(), worker_cpu_ms of its detach record).
 * - Every call still takes a token of the costly rate-limit class (broker.c).
 *
 * A figure up to a second old (longer for a huge tree) is what du gives too by the
 * time its output is read.
 *
 * Where /data is a file system of its own (an ext4 image of limits.storage, the
 * usual case: src/supervisor/storage.h), there is no walk at all: one fstatfs(2)
 * on the loop gives the figure, and the quota is enforced by that file system.
 * used = quota - f_bavail * f_frsize (clamped at 0), so used + free is the quota
 * and the room left reaches 0 exactly when the app's writes start failing with
 * ENOSPC; raw used blocks would count the journal and inode tables, 4-70 MiB the
 * app never wrote. Only a plain /data directory (a host without loop devices) is
 * walked.
 *
 * /tmp is the app's tmpfs, measured on the loop with one fstatfs through
 * /proc/PID/root/tmp of its init (microseconds); its quota is that tmpfs's size.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/time-util.h"
#include "base/tree-usage.h"
#include "broker/broker-internal.h"
#include "policy/manifest.h"

#define USAGE_ENTRIES_MAX  32768u
#define USAGE_DEPTH_MAX    64u
#define USAGE_CACHE_MIN_MS 1000u /* a figure is answered from the cache this long */
#define USAGE_COST_FACTOR  10u   /* ... or this many times the walk's CPU time */

typedef struct UsageState UsageState;

/* One walk on the threadpool. The worker reads dir_fd and fills the results; the
 * loop owns everything else. st is NULL once the app has gone: the walk is then
 * freed when it ends. */
typedef struct UsageWalk {
        uv_work_t req;
        UsageState *st;
        int dir_fd; /* the data dir, O_RDONLY|O_DIRECTORY; closed by the worker */
        /* results */
        uint64_t bytes;
        unsigned entries;
        bool truncated;
        int error; /* -errno of the data dir's fstat */
        uint64_t cpu_ns;
} UsageWalk;

/* A call waiting for the walk in flight. */
typedef struct UsageWaiter {
        BrokerCall *call;
        bool started_walk; /* this call's record gets walk_cpu_us */
        struct UsageWaiter *next;
} UsageWaiter;

/* Per app (BROKER_SLOT_USAGE), a handle on no right: closed when the app detaches. */
struct UsageState {
        BrokerHandle handle;
        UsageWalk *walk; /* in flight, or NULL */
        UsageWaiter *waiters;
        bool have; /* the figure below is valid */
        uint64_t bytes;
        unsigned entries;
        bool truncated;
        uint64_t at_ns;    /* uv_hrtime() when the walk ended */
        uint64_t valid_ns; /* how long the figure is answered from the cache */
};

/* ---- the walk (on a threadpool thread: touches nothing but its UsageWalk) ---------- */

static void walk_work(uv_work_t *req)
{
        UsageWalk *w = req->data;
        uint64_t t0 = now_clock_ns(CLOCK_THREAD_CPUTIME_ID);
        struct stat st;

        if (fstat(w->dir_fd, &st) < 0) {
                w->error = negative_errno();
                w->dir_fd = safe_close(w->dir_fd);
        } else {
                TreeUsage u = {
                        .dev = st.st_dev,
                        .entries_max = USAGE_ENTRIES_MAX,
                        .depth_max = USAGE_DEPTH_MAX,
                        .bytes = (uint64_t)st.st_blocks * 512, /* the data dir's own */
                };

                tree_usage_walk(&u, TAKE_FD(w->dir_fd));
                w->bytes = u.bytes;
                w->entries = (unsigned)u.entries;
                w->truncated = u.truncated;
        }
        w->cpu_ns = now_clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
}

/* ---- answers (on the loop) ------------------------------------------------------------ */

/* The app's /tmp as its init sees it. The pidfd, checked after the open, proves
 * the pid still named the app's init when /proc/PID/root was resolved. */
static void tmp_usage(const BrokerAppInfo *info, uint64_t *ret_used, uint64_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;
        char path[64];
        struct statfs sf;

        if (info->pid <= 0 || info->pidfd < 0)
                return;
        snprintf(path, sizeof path, "/proc/%d/root/tmp", (int)info->pid);
        fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || syscall(SYS_pidfd_send_signal, info->pidfd, 0, NULL, 0) < 0 ||
            fstatfs(fd, &sf) < 0)
                return;
        *ret_used = (uint64_t)(sf.f_blocks - sf.f_bfree) * (uint64_t)sf.f_frsize;
        *ret_size = (uint64_t)sf.f_blocks * (uint64_t)sf.f_frsize;
}

/* Answers c with a walk's figure (data_bytes over entries entries) and /tmp's. The
 * record names the entries, not the figure's age: repeated answers from the cache
 * are the same record, which the audit log coalesces (docs/audit.md). */
static void answer(BrokerCall *c, uint64_t data_bytes, unsigned entries, bool truncated,
                   bool quota_fs)
{
        Cella__V1__FsUsageReply reply = CELLA__V1__FS_USAGE_REPLY__INIT;
        const BrokerAppInfo *info = broker_app_info(c->app);
        uint64_t tmp_size = 0;

        tmp_usage(info, &reply.tmp_used_bytes, &tmp_size);
        reply.data_used_bytes = data_bytes;
        reply.data_quota_bytes = info->manifest->limits.storage;
        if (quota_fs) /* /data is a file system of limits.storage (the default) */
                reply.data_quota_bytes = reply.data_quota_bytes ?: MANIFEST_STORAGE_DEFAULT;
        reply.tmp_quota_bytes = tmp_size ?: info->manifest->limits.tmp;
        broker_audit_set(c, "entries", json_integer(entries));
        if (truncated)
                broker_audit_set(c, "truncated", json_true());
        broker_reply(c, &reply.base, NULL, 0);
}

static void waiter_cancel(BrokerCall *c)
{
        UsageState *st = broker_app_slot(c->app, BROKER_SLOT_USAGE);

        for (UsageWaiter **p = st ? &st->waiters : NULL; p && *p; p = &(*p)->next)
                if ((*p)->call == c) {
                        UsageWaiter *w = *p;

                        *p = w->next;
                        free(w);
                        return;
                }
}

static void walk_done(uv_work_t *req, int status)
{
        UsageWalk *w = req->data;
        UsageState *st = w->st;
        UsageWaiter *waiter;

        if (status != 0) /* cancelled before it ran: the fd is still ours */
                w->dir_fd = safe_close(w->dir_fd);
        if (!st) { /* the app went away meanwhile */
                free(w);
                return;
        }
        st->walk = NULL;
        if (status == 0 && w->error == 0) {
                uint64_t cost = (uint64_t)USAGE_COST_FACTOR * w->cpu_ns,
                         min = (uint64_t)USAGE_CACHE_MIN_MS * 1000000u;

                st->have = true;
                st->bytes = w->bytes;
                st->entries = w->entries;
                st->truncated = w->truncated;
                st->at_ns = uv_hrtime();
                st->valid_ns = cost > min ? cost : min;
        }
        broker_app_charge_cpu(st->handle.app, w->cpu_ns);
        /* One waiter at a time off the list: a reply that finds the channel gone
         * hangs the app up, which abandons its other calls through waiter_cancel(),
         * and that must find them on st->waiters (a copy of the list taken first
         * would answer calls already freed). */
        while ((waiter = st->waiters)) {
                BrokerCall *c = waiter->call;
                bool started_walk = waiter->started_walk;

                st->waiters = waiter->next;
                free(waiter);
                c->cancel = NULL;
                if (status != 0 || w->error != 0)
                        broker_reply_error(c, status != 0 ? ECANCELED : -w->error,
                                           "the data directory cannot be read");
                else {
                        if (started_walk)
                                broker_audit_set(c, "walk_cpu_us",
                                                 json_integer((json_int_t)(w->cpu_ns / 1000u)));
                        answer(c, w->bytes, w->entries, w->truncated, false);
                }
        }
        free(w);
}

static void usage_state_close(BrokerHandle *h)
{
        UsageState *st = (UsageState *)((char *)h - offsetof(UsageState, handle));

        /* Waiting calls were abandoned by the core before the handles closed. */
        while (st->waiters) {
                UsageWaiter *w = st->waiters;

                st->waiters = w->next;
                free(w);
        }
        if (st->walk) {
                st->walk->st = NULL;
                (void)uv_cancel((uv_req_t *)&st->walk->req); /* walk_done frees it */
        }
        broker_app_set_slot(h->app, BROKER_SLOT_USAGE, NULL);
        free(st);
}

static UsageState *state_get(BrokerApp *app)
{
        UsageState *st = broker_app_slot(app, BROKER_SLOT_USAGE);

        if (st)
                return st;
        st = calloc(1, sizeof *st);
        if (!st)
                return NULL;
        broker_app_set_slot(app, BROKER_SLOT_USAGE, st);
        broker_handle_add(app, &st->handle, NULL, usage_state_close);
        return st;
}

/*
 * The figure of a /data that is a file system of its own: the root of an ext4
 * mount (STATX_ATTR_MOUNT_ROOT) at info->data_dir. *ret_used: bytes, quota minus
 * the room left, clamped at 0. Returns 1 with the figure, 0 if /data is a plain
 * directory (to be walked), or a negative errno.
 */
static int quota_fs_used(const BrokerAppInfo *info, uint64_t *ret_used)
{
        uint64_t quota = info->manifest->limits.storage ?: MANIFEST_STORAGE_DEFAULT, room;
        struct statx sx;
        struct statfs sf;

        if (statx(AT_FDCWD, info->data_dir, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &sx) < 0 ||
            statfs(info->data_dir, &sf) < 0)
                return negative_errno();
        if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) ||
            !(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) || sf.f_type != EXT4_SUPER_MAGIC)
                return 0;
        room = (uint64_t)sf.f_bavail * (uint64_t)sf.f_frsize;
        *ret_used = room < quota ? quota - room : 0;
        return 1;
}

static const char *fs_usage_right(const ProtobufCMessage *req, char *buf, size_t size,
                                  int *ret_error)
{
        return "storage";
}

static void fs_usage_handle(BrokerCall *c)
{
        const BrokerAppInfo *info = broker_app_info(c->app);
        UsageState *st;
        UsageWaiter *waiter, **p;
        UsageWalk *w;
        uint64_t now = uv_hrtime(), used;
        int fd, r;

        if (!info->data_dir) { /* no /data: nothing to walk */
                answer(c, 0, 0, false, false);
                return;
        }
        r = quota_fs_used(info, &used);
        if (r > 0) {
                answer(c, used, 0, false, true);
                return;
        }
        st = state_get(c->app);
        if (!st) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        if (st->have && now - st->at_ns < st->valid_ns) {
                answer(c, st->bytes, st->entries, st->truncated, false);
                return;
        }
        waiter = calloc(1, sizeof *waiter);
        if (!waiter) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        waiter->call = c;
        if (!st->walk) {
                fd = open(info->data_dir, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0) {
                        r = errno;
                        free(waiter);
                        broker_reply_error(c, r, "the data directory cannot be read");
                        return;
                }
                w = calloc(1, sizeof *w);
                if (!w) {
                        safe_close(fd);
                        free(waiter);
                        broker_reply_error(c, ENOMEM, NULL);
                        return;
                }
                w->st = st;
                w->dir_fd = fd;
                w->req.data = w;
                r = uv_queue_work(broker_options(broker_app_broker(c->app))->loop, &w->req,
                                  walk_work, walk_done);
                if (r < 0) {
                        safe_close(fd);
                        free(w);
                        free(waiter);
                        broker_reply_error(c, -r, "the kernel could not start the walk");
                        return;
                }
                st->walk = w;
                waiter->started_walk = true;
        }
        /* Answered when the walk ends (walk_done), in the order asked, or forgotten
         * if cancelled. At most BROKER_OUTSTANDING_MAX wait. */
        for (p = &st->waiters; *p; p = &(*p)->next)
                ;
        *p = waiter;
        c->cancel = waiter_cancel;
}

const BrokerCallDef broker_calls_usage[] = {
        {
                .opcode = CELLA__V1__OPCODE__OPCODE_FS_USAGE,
                .right_of = fs_usage_right,
                .handle = fs_usage_handle,
        },
        {0},
};
