/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "base/macro.h"

typedef union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
} OneFd;

int fd_send(int sock, int fd)
{
        char byte = 'F';
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        OneFd c = {};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = c.buf,
                            .msg_controllen = sizeof c.buf};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        ssize_t k;

        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
        k = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (k < 0)
                return negative_errno();
        return k == 1 ? 0 : -EIO;
}

int fd_receive(int sock)
{
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        OneFd c = {};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = c.buf,
                            .msg_controllen = sizeof c.buf};
        struct cmsghdr *cm;
        ssize_t k;
        int fd = -EBADF;

        k = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (k < 0)
                return negative_errno();
        cm = CMSG_FIRSTHDR(&mh);
        if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&fd, CMSG_DATA(cm), sizeof fd);
        if (k != 1 || fd < 0 || (mh.msg_flags & MSG_CTRUNC)) {
                safe_close(fd);
                return -EBADMSG;
        }
        return fd;
}

ssize_t fd_msg_send(int sock, const void *buf, size_t size, const int *fds, size_t n, int flags)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * FD_MSG_MAX_FDS)];
        } control = {};
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = size};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t k;

        if (n > FD_MSG_MAX_FDS)
                return -E2BIG;
        if (n > 0) {
                struct cmsghdr *c;

                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
        }
        k = RETRY_EINTR(sendmsg(sock, &mh, flags | MSG_NOSIGNAL));
        return k < 0 ? negative_errno() : k;
}

ssize_t fd_msg_recv(int sock, void *buf, size_t size, int *fds, size_t max, size_t *ret_n,
                    int flags)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * FD_MSG_MAX_FDS)];
        } control = {};
        struct iovec iov = {.iov_base = buf, .iov_len = size};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = control.buf,
                            .msg_controllen = CMSG_SPACE(sizeof(int) * FD_MSG_MAX_FDS)};
        bool extra = false;
        size_t n = 0;
        ssize_t k;

        *ret_n = 0;
        if (max > FD_MSG_MAX_FDS)
                max = FD_MSG_MAX_FDS;
        /* Room for max fds only: more make the kernel truncate (MSG_CTRUNC). */
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * max);
        k = RETRY_EINTR(recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC));
        if (k < 0)
                return negative_errno();
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                size_t cn;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                cn = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < cn; i++) {
                        int fd;

                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                        if (n < max)
                                fds[n++] = fd;
                        else {
                                safe_close(fd);
                                extra = true;
                        }
                }
        }
        if (k == (ssize_t)size && !extra && !(mh.msg_flags & MSG_CTRUNC)) {
                *ret_n = n;
                return k;
        }
        for (size_t i = 0; i < n; i++)
                safe_close(fds[i]);
        return k == 0 && n == 0 && !extra ? 0 : -EBADMSG;
}
