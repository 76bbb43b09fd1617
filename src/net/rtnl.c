/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rtnetlink requests for the app networks (rtnl.h). Message layout: rtnetlink(7),
 * netlink(7) and the kernel's include/uapi/linux/{rtnetlink,if_link,veth,
 * if_addr}.h; a veth's peer is a struct ifinfomsg followed by its own attributes
 * inside VETH_INFO_PEER (drivers/net/veth.c, veth_newlink()).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "net/rtnl.h"

/* Big enough for every request below and for an error answer quoting one. */
#define RTNL_BUF 1024
/* An answer to RTM_GETLINK (one link's message, without its statistics). */
#define RTNL_ANSWER_MAX (32 * 1024)
/* How long a request waits for the kernel's answer before it fails (ETIMEDOUT): the
 * kernel always answers an NLM_F_ACK request, this only bounds the unexpected. */
#define RTNL_TIMEOUT_S 5

/* Sequence numbers of requests, for matching answers; only the loop thread and the
 * threadpool's deletions use them, each on its own socket, so a race only repeats a
 * number on two sockets, which is harmless. */
static _Atomic uint32_t rtnl_seq;

typedef struct Req {
        union {
                struct nlmsghdr h;
                char buf[RTNL_BUF];
        };
        bool overflow;
} Req;

static void *req_tail(Req *r)
{
        return r->buf + NLMSG_ALIGN(r->h.nlmsg_len);
}

static void req_init(Req *r, uint16_t type, uint16_t flags, const void *body, size_t len)
{
        memset(r, 0, sizeof *r);
        r->h.nlmsg_len = NLMSG_LENGTH(len);
        r->h.nlmsg_type = type;
        r->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        memcpy(NLMSG_DATA(&r->h), body, len);
}

static struct rtattr *attr_put(Req *r, uint16_t type, const void *data, size_t len)
{
        struct rtattr *a = req_tail(r);
        size_t total = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_LENGTH(len);

        if (total > sizeof r->buf) {
                r->overflow = true;
                return NULL;
        }
        a->rta_type = type;
        a->rta_len = RTA_LENGTH(len);
        if (len)
                memcpy(RTA_DATA(a), data, len);
        r->h.nlmsg_len = total;
        return a;
}

static void attr_str(Req *r, uint16_t type, const char *s)
{
        (void)attr_put(r, type, s, strlen(s) + 1);
}

static void attr_u32(Req *r, uint16_t type, uint32_t v)
{
        (void)attr_put(r, type, &v, sizeof v);
}

static struct rtattr *nest_begin(Req *r, uint16_t type)
{
        return attr_put(r, type, NULL, 0);
}

static void nest_end(Req *r, struct rtattr *a)
{
        if (a)
                a->rta_len = (unsigned short)((char *)req_tail(r) - (char *)a);
}

/* Sends r and waits for its acknowledgement. Returns 0 or the kernel's -errno. */
static int req_do(int fd, Req *r)
{
        struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
        char ans[RTNL_BUF * 2]; /* an ACK, or an error quoting our request */

        if (r->overflow)
                return -ENOBUFS;
        r->h.nlmsg_seq = ++rtnl_seq;
        if (RETRY_EINTR(sendto(fd, r->buf, r->h.nlmsg_len, 0, (struct sockaddr *)&kernel,
                               sizeof kernel)) < 0)
                return negative_errno();
        for (;;) {
                ssize_t n = RETRY_EINTR(recv(fd, ans, sizeof ans, MSG_TRUNC));

                if (n < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : negative_errno();
                if ((size_t)n > sizeof ans)
                        continue; /* not an answer of ours: they are small */
                for (struct nlmsghdr *h = (struct nlmsghdr *)ans; NLMSG_OK(h, (size_t)n);
                     h = NLMSG_NEXT(h, n)) {
                        if (h->nlmsg_seq != r->h.nlmsg_seq)
                                continue; /* an earlier request's late answer */
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                const struct nlmsgerr *e = NLMSG_DATA(h);

                                if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e))
                                        return -EBADMSG;
                                return e->error; /* 0: the ACK */
                        }
                }
        }
}

/*
 * Returns the calling thread to its own network namespace (self: an fd of it, opened
 * before it left). If that fails the thread would go on in an app's or a hub's
 * namespace, and every socket it made later (a control connection, an app's egress)
 * would be there: cellad aborts instead. Never expected: the namespace is cellad's
 * own, and cellad is root of the user namespace that owns it.
 */
static void back_home(int self)
{
        if (setns(self, CLONE_NEWNET) < 0) {
                log_error_errno(negative_errno(),
                                "cannot return to cellad's own network namespace: %m; "
                                "aborting rather than go on in another");
                abort();
        }
}

int rtnl_open_in(int ns_fd, int *ret_ns_fd)
{
        _cleanup_close_ int self = -EBADF, sock = -EBADF, nsfd = -EBADF;
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
        int r = 0;

        if (ns_fd >= 0) {
                self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (self < 0)
                        return negative_errno();
                if (setns(ns_fd, CLONE_NEWNET) < 0)
                        return negative_errno();
        }
        sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (sock < 0)
                r = negative_errno();
        if (r >= 0 && ret_ns_fd) {
                nsfd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (nsfd < 0)
                        r = negative_errno();
        }
        if (self >= 0)
                back_home(self);
        if (r < 0)
                return r;
        if (bind(sock, (struct sockaddr *)&sa, sizeof sa) < 0)
                return negative_errno();
        if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){.tv_sec = RTNL_TIMEOUT_S},
                       sizeof(struct timeval)) < 0)
                return negative_errno();
        if (ret_ns_fd)
                *ret_ns_fd = TAKE_FD(nsfd);
        return TAKE_FD(sock);
}

/*
 * In a namespace just made: no IPv6 on any link made there (disable_ipv6 in "all" and
 * "default", ip-sysctl.rst), so that a hub holds no address at all, not even a
 * link-local one. /proc/sys/net shows the calling thread's namespace. A kernel
 * without IPv6 has no such files: nothing to turn off.
 */
static int no_ipv6_here(void)
{
        static const char *const paths[] = {
                "/proc/sys/net/ipv6/conf/all/disable_ipv6",
                "/proc/sys/net/ipv6/conf/default/disable_ipv6",
        };

        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                _cleanup_close_ int fd = open(paths[i], O_WRONLY | O_CLOEXEC);

                if (fd < 0 && errno == ENOENT)
                        continue;
                if (fd < 0 || write(fd, "1", 1) != 1)
                        return negative_errno();
        }
        return 0;
}

int rtnl_netns_new(void)
{
        _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        int fd, r = 0;

        if (self < 0)
                return negative_errno();
        if (unshare(CLONE_NEWNET) < 0)
                return negative_errno();
        fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                r = negative_errno();
        else
                r = no_ipv6_here();
        if (r < 0)
                fd = safe_close(fd);
        back_home(self);
        return r < 0 ? r : fd;
}

int rtnl_link_index(int rtnl, const char *name)
{
        struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
        _cleanup_free_ char *ans = malloc(RTNL_ANSWER_MAX); /* a bridge's link: ~2 KiB */
        ssize_t n;
        Req r;

        if (!name || strlen(name) >= IFNAMSIZ)
                return -EINVAL;
        if (!ans)
                return -ENOMEM;
        req_init(&r, RTM_GETLINK, 0, &ifi, sizeof ifi);
        r.h.nlmsg_flags &= ~NLM_F_ACK;
        r.h.nlmsg_seq = ++rtnl_seq;
        attr_str(&r, IFLA_IFNAME, name);
        attr_u32(&r, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        if (r.overflow)
                return -ENOBUFS;
        if (RETRY_EINTR(send(rtnl, r.buf, r.h.nlmsg_len, 0)) < 0)
                return negative_errno();
        for (;;) {
                n = RETRY_EINTR(recv(rtnl, ans, RTNL_ANSWER_MAX, MSG_TRUNC));
                if (n < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : negative_errno();
                if (n > RTNL_ANSWER_MAX)
                        return -EMSGSIZE;
                for (struct nlmsghdr *h = (struct nlmsghdr *)ans; NLMSG_OK(h, (size_t)n);
                     h = NLMSG_NEXT(h, n)) {
                        if (h->nlmsg_seq != r.h.nlmsg_seq)
                                continue; /* not the answer to this request */
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                const struct nlmsgerr *e = NLMSG_DATA(h);

                                return e->error ? e->error : -ENODEV;
                        }
                        if (h->nlmsg_type == RTM_NEWLINK &&
                            h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifinfomsg))) {
                                const struct ifinfomsg *got = NLMSG_DATA(h);

                                return got->ifi_index > 0 ? got->ifi_index : -EBADMSG;
                        }
                }
        }
}

int rtnl_bridge_new(int rtnl, const char *name)
{
        struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
        struct rtattr *info, *data;
        Req r;
        int k;

        req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
        attr_str(&r, IFLA_IFNAME, name);
        info = nest_begin(&r, IFLA_LINKINFO);
        attr_str(&r, IFLA_INFO_KIND, "bridge");
        data = nest_begin(&r, IFLA_INFO_DATA);
        attr_u32(&r, IFLA_BR_STP_STATE, 0);
        nest_end(&r, data);
        nest_end(&r, info);
        k = req_do(rtnl, &r);
        if (k < 0)
                return k;
        return rtnl_link_index(rtnl, name);
}

int rtnl_veth_new(int rtnl, const char *name, const char *peer, int peer_ns_fd)
{
        struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
        struct rtattr *info, *data, *p;
        Req r;
        int k;

        req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
        attr_str(&r, IFLA_IFNAME, name);
        info = nest_begin(&r, IFLA_LINKINFO);
        attr_str(&r, IFLA_INFO_KIND, "veth");
        data = nest_begin(&r, IFLA_INFO_DATA);
        p = attr_put(&r, VETH_INFO_PEER, &ifi, sizeof ifi);
        attr_str(&r, IFLA_IFNAME, peer);
        attr_u32(&r, IFLA_NET_NS_FD, (uint32_t)peer_ns_fd);
        nest_end(&r, p);
        nest_end(&r, data);
        nest_end(&r, info);
        k = req_do(rtnl, &r);
        if (k < 0)
                return k;
        return rtnl_link_index(rtnl, name);
}

int rtnl_link_up(int rtnl, int ifindex, int master)
{
        struct ifinfomsg ifi = {
                .ifi_family = AF_UNSPEC,
                .ifi_index = ifindex,
                .ifi_flags = IFF_UP,
                .ifi_change = IFF_UP,
        };
        Req r;

        req_init(&r, RTM_NEWLINK, 0, &ifi, sizeof ifi);
        if (master > 0)
                attr_u32(&r, IFLA_MASTER, (uint32_t)master);
        return req_do(rtnl, &r);
}

int rtnl_addr_add(int rtnl, int ifindex, uint32_t addr_be, unsigned prefix)
{
        struct ifaddrmsg ifa = {
                .ifa_family = AF_INET,
                .ifa_prefixlen = (unsigned char)prefix,
                .ifa_flags = IFA_F_PERMANENT,
                .ifa_scope = RT_SCOPE_UNIVERSE,
                .ifa_index = (unsigned)ifindex,
        };
        Req r;

        if (prefix < 1 || prefix > 32 || ifindex <= 0)
                return -EINVAL;
        req_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
        (void)attr_put(&r, IFA_LOCAL, &addr_be, sizeof addr_be);
        (void)attr_put(&r, IFA_ADDRESS, &addr_be, sizeof addr_be);
        return req_do(rtnl, &r);
}

int rtnl_link_del(int rtnl, int ifindex)
{
        struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = ifindex};
        Req r;

        if (ifindex <= 0)
                return -EINVAL;
        req_init(&r, RTM_DELLINK, 0, &ifi, sizeof ifi);
        return req_do(rtnl, &r);
}
