/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The keeper's wire (keeper.h): messages with their fds, and the client's side
 * (cellad's): connect, start a keeper, hold, drop, take, bye.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "base/macro.h"
#include "keeper/keeper.h"

#ifndef CELLA_KEEPER_BUILD_PATH
#define CELLA_KEEPER_BUILD_PATH ""
#endif
#ifndef CELLA_KEEPER_INSTALL_PATH
#define CELLA_KEEPER_INSTALL_PATH "/usr/local/libexec/cella/cella-keeper"
#endif

_Static_assert(_KEEPER_FD_MAX <= FD_MSG_MAX_FDS, "a keeper message's fds fit fd_msg_send()");

static unsigned n_fds_of(uint32_t mask)
{
        return (unsigned)__builtin_popcount(mask & ((1u << _KEEPER_FD_MAX) - 1));
}

int keeper_msg_send(int sock, const KeeperMsg *m, const int *fds)
{
        int list[_KEEPER_FD_MAX];
        size_t n = 0;
        ssize_t k;

        if (m->rec.fds >> _KEEPER_FD_MAX)
                return -EINVAL;
        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                if (m->rec.fds & (1u << i)) {
                        if (!fds || fds[i] < 0)
                                return -EINVAL;
                        list[n++] = fds[i];
                }
        for (;;) {
                struct pollfd p = {.fd = sock, .events = POLLOUT};
                int r;

                k = fd_msg_send(sock, m, sizeof *m, list, n, 0);
                if (k != -EAGAIN)
                        break;
                /* A non-blocking socket (a client's libuv watches it) with a full
                 * buffer: wait for room, as long as a reply may take. */
                r = RETRY_EINTR(poll(&p, 1, KEEPER_REPLY_TIMEOUT_MS));
                if (r == 0)
                        return -ETIMEDOUT;
                if (r < 0)
                        return negative_errno();
        }
        if (k < 0)
                return (int)k;
        return k == (ssize_t)sizeof *m ? 0 : -EIO;
}

int keeper_msg_recv(int sock, KeeperMsg *m, int *fds, int timeout_ms)
{
        struct pollfd p = {.fd = sock, .events = POLLIN};
        int got[_KEEPER_FD_MAX];
        size_t n;
        ssize_t k;
        int r;

        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                fds[i] = -EBADF;
        r = RETRY_EINTR(poll(&p, 1, timeout_ms));
        if (r < 0)
                return negative_errno();
        if (r == 0)
                return timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
        k = fd_msg_recv(sock, m, sizeof *m, got, _KEEPER_FD_MAX, &n, MSG_DONTWAIT);
        if (k == 0)
                return -ECONNRESET;
        if (k < 0)
                return (int)k;
        if (m->magic != KEEPER_MAGIC || (m->rec.fds >> _KEEPER_FD_MAX) ||
            n != n_fds_of(m->rec.fds)) {
                for (size_t i = 0; i < n; i++)
                        safe_close(got[i]);
                return -EBADMSG;
        }
        for (unsigned i = 0, j = 0; i < _KEEPER_FD_MAX; i++)
                if (m->rec.fds & (1u << i))
                        fds[i] = got[j++];
        return 0;
}

void keeper_set_done(KeeperSet *set)
{
        if (!set)
                return;
        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                set->fds[i] = safe_close(set->fds[i]);
}

static bool terminated(const char *s, size_t size)
{
        return memchr(s, 0, size) != NULL;
}

/* Whether s (terminated) is a packed group's name: 1..64 bytes of [a-z0-9_-]
 * (docs/manifest.md, "group"). */
static bool group_name_ok(const char *s)
{
        size_t n = strlen(s);

        return n > 0 && n < KEEPER_GROUP_MAX &&
               strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

int keeper_record_check_kind(const KeeperRecord *rec)
{
        const uint32_t member_fds =
                KEEPER_FDS_REQUIRED | (1u << KEEPER_FD_CHANNEL) | (1u << KEEPER_FD_STDOUT);
        const uint32_t member_not = (1u << KEEPER_FD_NOTIFY) | (1u << KEEPER_FD_STDERR) |
                                    (1u << KEEPER_FD_PTY) | (1u << KEEPER_FD_STATS);
        size_t p = strlen(KEEPER_HOST_PREFIX);

        if (!terminated(rec->id, sizeof rec->id) || !terminated(rec->group, sizeof rec->group))
                return -EINVAL;
        switch (rec->kind) {
        case KEEPER_KIND_APP:
                if (rec->group[0] || rec->member_index || rec->n_members || rec->member_run ||
                    strchr(rec->id, ':'))
                        return -EINVAL;
                return 0;
        case KEEPER_KIND_HOST:
                if (!group_name_ok(rec->group) || strncmp(rec->id, KEEPER_HOST_PREFIX, p) != 0 ||
                    strcmp(rec->id + p, rec->group) != 0 || rec->n_members == 0 ||
                    rec->n_members > KEEPER_SETS_MAX || rec->member_index || rec->member_run ||
                    (rec->fds & (1u << KEEPER_FD_PTY)))
                        return -EINVAL;
                return 0;
        case KEEPER_KIND_MEMBER:
                if (!group_name_ok(rec->group) || strchr(rec->id, ':') || rec->n_members ||
                    rec->member_index >= KEEPER_SETS_MAX || (rec->fds & member_fds) != member_fds ||
                    (rec->fds & member_not))
                        return -EINVAL;
                return 0;
        default:
                return -EINVAL;
        }
}

int keeper_record_check(const KeeperRecord *rec)
{
        const char *k = rec->cgroup_kill;

        if (!terminated(rec->id, sizeof rec->id) || !rec->id[0] ||
            !terminated(rec->cgroup_name, sizeof rec->cgroup_name) ||
            !terminated(rec->cgroup_kill, sizeof rec->cgroup_kill) ||
            !terminated(rec->app_dir, sizeof rec->app_dir) || keeper_record_check_kind(rec) < 0)
                return -EINVAL;
        if ((rec->fds & KEEPER_FDS_REQUIRED) != KEEPER_FDS_REQUIRED || rec->pid <= 0)
                return -EINVAL;
        if (strchr(rec->cgroup_name, '/'))
                return -EINVAL;
        if (k[0] && (strncmp(k, "/sys/fs/cgroup/", 15) != 0 || strstr(k, "/..") ||
                     strstr(k, "/./") || strstr(k, "//")))
                return -EINVAL;
        return 0;
}

/* ---- client -------------------------------------------------------------------------- */

int keeper_connect(const char *path, pid_t *ret_pid)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -EBADF;
        struct ucred cred;
        socklen_t len = sizeof cred;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                return negative_errno();
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return negative_errno();
        if (cred.uid != 0 && cred.uid != geteuid())
                return -EPERM;
        if (ret_pid)
                *ret_pid = cred.pid;
        return TAKE_FD(fd);
}

const char *keeper_path(void)
{
        static const char *path;

        if (!path)
                path = CELLA_KEEPER_BUILD_PATH[0] && access(CELLA_KEEPER_BUILD_PATH, X_OK) == 0
                               ? CELLA_KEEPER_BUILD_PATH
                               : CELLA_KEEPER_INSTALL_PATH;
        return path;
}

int keeper_spawn(const char *keeper_path_, const char *state_dir, unsigned grace_s)
{
        _cleanup_close_pair_ int ready[2] = {-EBADF, -EBADF};
        char grace[16], fdarg[16], line[64] = "";
        size_t got = 0;
        pid_t mid;
        int status, r;

        if (pipe2(ready, O_CLOEXEC) < 0)
                return negative_errno();
        snprintf(grace, sizeof grace, "%u", grace_s);
        mid = fork();
        if (mid < 0)
                return negative_errno();
        if (mid == 0) {
                /* The middle process: a session of its own, then the keeper as its
                 * child, then gone, so that the keeper is nobody's child of ours. */
                pid_t k;

                if (setsid() < 0)
                        _exit(1);
                k = fork();
                if (k < 0)
                        _exit(1);
                if (k == 0) {
                        char *argv[] = {(char *)"cella-keeper",
                                        (char *)"--state-dir",
                                        (char *)state_dir,
                                        (char *)"--grace",
                                        grace,
                                        (char *)"--ready-fd",
                                        fdarg,
                                        NULL};
                        sigset_t none;
                        int fd = fcntl(ready[1], F_DUPFD, 3), /* not close-on-exec */
                                null = open("/dev/null", O_RDWR | O_CLOEXEC);

                        sigemptyset(&none);
                        sigprocmask(SIG_SETMASK, &none, NULL);
                        /* Not our stdin and stdout: a pipe someone reads to its end
                         * must end with us. stderr stays: what the keeper says (a
                         * grace kill) goes where cellad's messages go. */
                        if (fd < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 ||
                            dup2(null, STDOUT_FILENO) < 0)
                                _exit(1);
                        snprintf(fdarg, sizeof fdarg, "%d", fd);
                        execv(keeper_path_, argv);
                        _exit(127);
                }
                _exit(0);
        }
        ready[1] = safe_close(ready[1]);
        if (RETRY_EINTR(waitpid(mid, &status, 0)) < 0)
                return negative_errno();
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -ECHILD;
        /* "READY <pid>\n", or "EXISTS\n", or EOF: the keeper failed (it said why on
         * stderr). */
        for (;;) {
                struct pollfd p = {.fd = ready[0], .events = POLLIN};
                ssize_t k;

                r = RETRY_EINTR(poll(&p, 1, KEEPER_REPLY_TIMEOUT_MS));
                if (r < 0)
                        return negative_errno();
                if (r == 0)
                        return -ETIMEDOUT;
                k = RETRY_EINTR(read(ready[0], line + got, sizeof line - 1 - got));
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                got += (size_t)k;
                line[got] = 0;
                if (strchr(line, '\n') || got >= sizeof line - 1)
                        break;
        }
        if (strncmp(line, "READY ", 6) == 0) {
                long pid = strtol(line + 6, NULL, 10);

                return pid > 0 ? (int)pid : -EIO;
        }
        if (strncmp(line, "EXISTS", 6) == 0)
                return -EEXIST;
        return -EIO;
}

int keeper_ensure(const char *keeper_path_, const char *state_dir, unsigned grace_s, pid_t *ret_pid)
{
        _cleanup_free_ char *path = NULL;
        int fd, r;

        if (asprintf(&path, "%s/%s", state_dir, KEEPER_SOCKET) < 0)
                return -ENOMEM;
        fd = keeper_connect(path, ret_pid);
        if (fd != -ENOENT && fd != -ECONNREFUSED)
                return fd;
        r = keeper_spawn(keeper_path_, state_dir, grace_s);
        if (r < 0 && r != -EEXIST)
                return r;
        return keeper_connect(path, ret_pid);
}

/* Sends m (op, rec) and waits for OK or ERROR. */
static int request(int sock, const KeeperMsg *m, const int *fds)
{
        int got[_KEEPER_FD_MAX];
        KeeperMsg reply;
        int r;

        r = keeper_msg_send(sock, m, fds);
        if (r < 0)
                return r;
        r = keeper_msg_recv(sock, &reply, got, KEEPER_REPLY_TIMEOUT_MS);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                safe_close(got[i]);
        if (reply.op == KEEPER_OP_OK)
                return 0;
        if (reply.op == KEEPER_OP_ERROR)
                return reply.error > 0 ? -reply.error : -EIO;
        return -EPROTO;
}

int keeper_hold(int sock, const KeeperSet *set)
{
        _cleanup_free_ KeeperMsg *m = calloc(1, sizeof *m);

        if (!m)
                return -ENOMEM;
        if (keeper_record_check(&set->rec) < 0)
                return -EINVAL;
        *m = (KeeperMsg){.magic = KEEPER_MAGIC, .op = KEEPER_OP_HOLD, .rec = set->rec};
        return request(sock, m, set->fds);
}

int keeper_drop(int sock, const char *id, uint64_t generation)
{
        _cleanup_free_ KeeperMsg *m = calloc(1, sizeof *m);

        if (!m)
                return -ENOMEM;
        if (strlen(id) >= sizeof m->rec.id)
                return -EINVAL;
        *m = (KeeperMsg){.magic = KEEPER_MAGIC, .op = KEEPER_OP_DROP};
        strcpy(m->rec.id, id);
        m->rec.generation = generation;
        return request(sock, m, NULL);
}

int keeper_note(int sock, const char *id, uint64_t generation, uint32_t role, uint32_t frozen)
{
        _cleanup_free_ KeeperMsg *m = calloc(1, sizeof *m);

        if (!m)
                return -ENOMEM;
        if (strlen(id) >= sizeof m->rec.id)
                return -EINVAL;
        *m = (KeeperMsg){.magic = KEEPER_MAGIC, .op = KEEPER_OP_NOTE};
        strcpy(m->rec.id, id);
        m->rec.generation = generation;
        m->rec.role = role;
        m->rec.frozen = frozen;
        return request(sock, m, NULL);
}

int keeper_bye(int sock)
{
        KeeperMsg m = {.magic = KEEPER_MAGIC, .op = KEEPER_OP_BYE};

        return request(sock, &m, NULL);
}

int keeper_take(int sock, KeeperSet **ret, size_t *n)
{
        KeeperMsg m = {.magic = KEEPER_MAGIC, .op = KEEPER_OP_TAKE};
        KeeperSet *sets = NULL;
        size_t count = 0;
        int r;

        *ret = NULL;
        *n = 0;
        r = keeper_msg_send(sock, &m, NULL);
        if (r < 0)
                return r;
        for (;;) {
                KeeperSet set;

                r = keeper_msg_recv(sock, &m, set.fds, KEEPER_REPLY_TIMEOUT_MS);
                if (r < 0)
                        goto fail;
                if (m.op == KEEPER_OP_END)
                        break;
                if (m.op == KEEPER_OP_ERROR) {
                        r = m.error > 0 ? -m.error : -EIO;
                        goto fail;
                }
                if (m.op != KEEPER_OP_SET || keeper_record_check(&m.rec) < 0) {
                        keeper_set_done(&set);
                        r = -EPROTO;
                        goto fail;
                }
                set.rec = m.rec;
                if (count % 64 == 0) {
                        KeeperSet *more = realloc(sets, (count + 64) * sizeof *sets);

                        if (!more) {
                                keeper_set_done(&set);
                                r = -ENOMEM;
                                goto fail;
                        }
                        sets = more;
                }
                sets[count++] = set;
        }
        *ret = sets;
        *n = count;
        return 0;
fail:
        for (size_t i = 0; i < count; i++)
                keeper_set_done(&sets[i]);
        free(sets);
        return r;
}
