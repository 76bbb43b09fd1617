/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The server side of the seccomp user-notification listener (seccomp_unotify(2)):
 * every call the app filter denies arrives here as a notification while the
 * calling thread waits; we count it and answer EPERM. Nothing here looks at the
 * target's memory or arguments, so the TOCTOU caveats of seccomp_unotify(2) do
 * not apply: the answer is always "no", and the call never runs.
 *
 * Kernel behaviour this relies on (kernel/seccomp.c):
 *   - poll() reports POLLIN while some notification has not been received yet,
 *     and POLLHUP once no task uses the filter any more;
 *   - RECV blocks when nothing is pending whatever O_NONBLOCK says, so we only
 *     call it after poll() said POLLIN; it returns ENOENT when the pending
 *     notification vanished in between (its task was interrupted or killed);
 *   - RECV wants a zeroed buffer of the kernel's struct size (EINVAL otherwise),
 *     which SECCOMP_GET_NOTIF_SIZES gives and may exceed our headers' structs;
 *   - SEND returns ENOENT when the target is no longer waiting for that id.
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/macro.h"
#include "sandbox/seccomp.h"

/* Room for the kernel's struct seccomp_notif / seccomp_notif_resp (80 and 24 bytes
 * on 6.x; they may grow, but not past this without us noticing). */
#define NOTIF_BUF_SIZE 1024

/* Bound on poll/RECV rounds that answer nothing (vanished notifications). */
#define NOTIFY_IDLE_ROUNDS_MAX 16

/* The kernel's struct sizes, asked once: a struct only grows with a new kernel. */
static int notif_sizes(size_t *ret_notif, size_t *ret_resp)
{
        static unsigned short cached_notif, cached_resp; /* 0 = not asked yet */
        unsigned short n = __atomic_load_n(&cached_notif, __ATOMIC_RELAXED);
        unsigned short r = __atomic_load_n(&cached_resp, __ATOMIC_RELAXED);

        if (n == 0 || r == 0) {
                struct seccomp_notif_sizes sizes = {};

                if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
                        return negative_errno();
                n = sizes.seccomp_notif;
                r = sizes.seccomp_notif_resp;
                __atomic_store_n(&cached_notif, n, __ATOMIC_RELAXED);
                __atomic_store_n(&cached_resp, r, __ATOMIC_RELAXED);
        }
        /* At least our own structs: we read and write their fields. */
        *ret_notif = n > sizeof(struct seccomp_notif) ? n : sizeof(struct seccomp_notif);
        *ret_resp = r > sizeof(struct seccomp_notif_resp) ? r : sizeof(struct seccomp_notif_resp);
        if (*ret_notif > NOTIF_BUF_SIZE || *ret_resp > NOTIF_BUF_SIZE)
                return -ENOBUFS;
        return 0;
}

/* 1 if a notification is waiting to be received, 0 if not, or -errno. */
static int notify_pending(int fd)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r;

        r = RETRY_EINTR(poll(&p, 1, 0));
        if (r < 0)
                return negative_errno();
        if (p.revents & POLLNVAL)
                return -EBADF;
        return (p.revents & POLLIN) ? 1 : 0;
}

static void denials_add(SeccompDenials *counts, const struct seccomp_notif *req)
{
        counts->total++;
        /* Only the native ABI reaches the listener (others are killed by the filter),
         * but the number is the app's to choose: anything past the table is "other". */
        if (req->data.nr >= 0 && req->data.nr < SECCOMP_SYSCALL_NR_END)
                counts->by_nr[req->data.nr]++;
        else
                counts->other++;
}

int seccomp_notify_process(int fd, SeccompDenials *counts)
{
        _Alignas(struct seccomp_notif) char req_buf[NOTIF_BUF_SIZE];
        _Alignas(struct seccomp_notif_resp) char resp_buf[NOTIF_BUF_SIZE];
        struct seccomp_notif *req = (struct seccomp_notif *)req_buf;
        struct seccomp_notif_resp *resp = (struct seccomp_notif_resp *)resp_buf;
        size_t req_size, resp_size;
        int handled = 0, idle = 0, r;

        if (fd < 0 || !counts)
                return -EINVAL;
        r = notif_sizes(&req_size, &resp_size);
        if (r < 0)
                return r;

        while (handled < SECCOMP_NOTIFY_BATCH_MAX && idle < NOTIFY_IDLE_ROUNDS_MAX) {
                r = notify_pending(fd);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;

                memset(req, 0, req_size);
                if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
                        if (errno == EINTR || errno == ENOENT) {
                                idle++;
                                continue;
                        }
                        return negative_errno();
                }
                denials_add(counts, req);
                handled++;

                memset(resp, 0, resp_size);
                resp->id = req->id;
                resp->error = -EPERM;
                resp->val = 0;
                resp->flags = 0; /* never SECCOMP_USER_NOTIF_FLAG_CONTINUE */
                if (RETRY_EINTR(ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp)) < 0 && errno != ENOENT)
                        return negative_errno(); /* ENOENT: the target died or was interrupted */
        }
        return handled;
}

/* Most denied first, then the lower syscall number. */
static int denial_cmp(const void *a, const void *b)
{
        const SeccompDenialCount *x = a, *y = b;

        if (x->count != y->count)
                return x->count > y->count ? -1 : 1;
        return (x->nr > y->nr) - (x->nr < y->nr);
}

size_t seccomp_denials_top(const SeccompDenials *d, SeccompDenialCount *ret, size_t n)
{
        SeccompDenialCount all[SECCOMP_SYSCALL_NR_END];
        size_t k = 0;

        if (!d || !ret)
                return 0;
        for (int nr = 0; nr < SECCOMP_SYSCALL_NR_END; nr++)
                if (d->by_nr[nr] > 0)
                        all[k++] = (SeccompDenialCount){.nr = nr, .count = d->by_nr[nr]};
        qsort(all, k, sizeof all[0], denial_cmp);
        if (n > k)
                n = k;
        memcpy(ret, all, n * sizeof all[0]);
        return n;
}
