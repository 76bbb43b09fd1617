/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/nslisten.h"

typedef struct ListenJob {
        int netns_fd;
        uint16_t port;
        int fds[2];
        int error;
} ListenJob;

/* A listening socket of family on its loopback address and port. Returns the fd or
 * -errno. */
static int listen_loopback(int family, uint16_t port)
{
        struct sockaddr_in in4 = {.sin_family = AF_INET,
                                  .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct sockaddr_in6 in6 = {.sin6_family = AF_INET6,
                                   .sin6_port = htons(port),
                                   .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, r;

        if (fd < 0)
                return -errno;
        /* The connections an earlier listener accepted (a cellad that restarted)
         * linger in TIME_WAIT on the port for 60 s: they must not keep a new one
         * from binding it. A socket listening there still does (EADDRINUSE). */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
                goto fail;
        if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
                goto fail;
        if (family == AF_INET6 ? bind(fd, (struct sockaddr *)&in6, sizeof in6) < 0
                               : bind(fd, (struct sockaddr *)&in4, sizeof in4) < 0)
                goto fail;
        if (listen(fd, 128) < 0)
                goto fail;
        return fd;
fail:
        r = -errno;
        close(fd);
        return r;
}

static void *listen_thread(void *userdata)
{
        ListenJob *j = userdata;
        int fd;

        /* This thread alone is in the app's namespace, and ends here. */
        if (setns(j->netns_fd, CLONE_NEWNET) < 0) {
                j->error = -errno;
                return NULL;
        }
        fd = listen_loopback(AF_INET, j->port);
        if (fd < 0) {
                j->error = fd;
                return NULL;
        }
        j->fds[0] = fd;
        /* ::1 is there whenever the namespace has IPv6 (lo up gives it). */
        fd = listen_loopback(AF_INET6, j->port);
        j->fds[1] = fd >= 0 ? fd : -1;
        return NULL;
}

int net_listen_in_netns(int netns_fd, uint16_t port, int ret_fds[2])
{
        ListenJob j = {.netns_fd = netns_fd, .port = port, .fds = {-1, -1}};
        sigset_t all, old;
        pthread_attr_t attr;
        pthread_t t;
        int r;

        ret_fds[0] = ret_fds[1] = -1;
        if (port == 0 || netns_fd < 0)
                return -EINVAL;
        r = pthread_attr_init(&attr);
        if (r)
                return -r;
        /* A small stack: the thread makes three system calls. */
        (void)pthread_attr_setstacksize(&attr, 64 * 1024);
        /* No signal of the process is handled on it. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = pthread_create(&t, &attr, listen_thread, &j);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (r)
                return -r;
        pthread_join(t, NULL);
        if (j.error < 0) {
                if (j.fds[0] >= 0)
                        close(j.fds[0]);
                return j.error;
        }
        ret_fds[0] = j.fds[0];
        ret_fds[1] = j.fds[1];
        return 0;
}
