/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
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
