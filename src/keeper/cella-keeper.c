/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella-keeper: holds the fds of the apps a cellad runs, so that they outlive a
 * crash or a re-exec of cellad and the next cellad adopts them (keeper.h,
 * docs/daemon.md "Restart and adoption"). Started by cellad (keeper_spawn());
 * not meant to be run by hand.
 *
 * Usage: cella-keeper --state-dir DIR [--grace SECONDS] [--ready-fd N]
 *   --state-dir DIR  listens on DIR/run/keeper.sock (DIR/run must be ours, 0700)
 *   --grace S        with no client connected for S seconds (default 60), kills
 *                    every sandbox it holds and exits
 *   --ready-fd N     writes "READY <pid>\n" (or "EXISTS\n": another keeper holds
 *                    DIR) to fd N once it listens, and closes it
 *
 * One thread, one poll() loop; no allocation per message beyond the set table.
 * It never reads or writes the fds it holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "keeper/keeper.h"

#define CLIENTS_MAX 8 /* cellad, a re-exec'd cellad, a test: a few at once */

/* A held set: its record kept compact (a KeeperRecord is 8.7 KB, mostly room for
 * paths; a thousand sets would be 8.7 MB), rebuilt for a TAKE. */
typedef struct Held {
        char *id, *cgroup_name, *cgroup_kill, *app_dir;
        uint64_t generation, oom_kills_before;
        int64_t started_ms;
        int32_t pid, app_pid, init_exec;
        uint32_t uid, restarts, role, frozen, mask;
        uint32_t kind, member_index, n_members, member_run; /* KeeperRecord's: packed groups */
        char group[KEEPER_GROUP_MAX];
        int fds[_KEEPER_FD_MAX];
} Held;

static Held *held;
static size_t n_held, cap_held;
static int clients[CLIENTS_MAX];
static size_t n_clients;
static volatile sig_atomic_t got_term;

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_term(int sig)
{
        (void)sig;
        got_term = 1;
}

static void held_close(Held *h)
{
        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                h->fds[i] = safe_close(h->fds[i]);
        free(h->id);
        free(h->cgroup_name);
        free(h->cgroup_kill);
        free(h->app_dir);
        h->id = h->cgroup_name = h->cgroup_kill = h->app_dir = NULL;
}

/* Fills h from rec (checked: its strings terminated). Returns 0 or -ENOMEM. */
static int held_set(Held *h, const KeeperRecord *rec)
{
        *h = (Held){
                .id = strdup(rec->id),
                .cgroup_name = strdup(rec->cgroup_name),
                .cgroup_kill = strdup(rec->cgroup_kill),
                .app_dir = strdup(rec->app_dir),
                .generation = rec->generation,
                .oom_kills_before = rec->oom_kills_before,
                .started_ms = rec->started_ms,
                .pid = rec->pid,
                .app_pid = rec->app_pid,
                .init_exec = rec->init_exec,
                .uid = rec->uid,
                .restarts = rec->restarts,
                .role = rec->role,
                .frozen = rec->frozen,
                .mask = rec->fds,
                .kind = rec->kind,
                .member_index = rec->member_index,
                .n_members = rec->n_members,
                .member_run = rec->member_run,
        };
        /* Terminated within its array (keeper_record_check()). */
        memcpy(h->group, rec->group, sizeof h->group);
        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                h->fds[i] = -EBADF;
        if (!h->id || !h->cgroup_name || !h->cgroup_kill || !h->app_dir) {
                held_close(h);
                return -ENOMEM;
        }
        return 0;
}

/* The record of h, as it came. */
static void held_record(const Held *h, KeeperRecord *rec)
{
        *rec = (KeeperRecord){
                .generation = h->generation,
                .pid = h->pid,
                .app_pid = h->app_pid,
                .started_ms = h->started_ms,
                .uid = h->uid,
                .init_exec = h->init_exec,
                .oom_kills_before = h->oom_kills_before,
                .restarts = h->restarts,
                .role = h->role,
                .frozen = h->frozen,
                .fds = h->mask,
                .kind = h->kind,
                .member_index = h->member_index,
                .n_members = h->n_members,
                .member_run = h->member_run,
        };
        memcpy(rec->group, h->group, sizeof rec->group);
        /* Each fits: they came in arrays of these sizes, terminated. */
        snprintf(rec->id, sizeof rec->id, "%s", h->id);
        snprintf(rec->cgroup_name, sizeof rec->cgroup_name, "%s", h->cgroup_name);
        snprintf(rec->cgroup_kill, sizeof rec->cgroup_kill, "%s", h->cgroup_kill);
        snprintf(rec->app_dir, sizeof rec->app_dir, "%s", h->app_dir);
}

static void held_remove(size_t i)
{
        held_close(&held[i]);
        held[i] = held[--n_held];
}

static ssize_t held_find(const char *id)
{
        for (size_t i = 0; i < n_held; i++)
                if (strcmp(held[i].id, id) == 0)
                        return (ssize_t)i;
        return -1;
}

/* Kills the sandbox of h: SIGKILL to its init through the pidfd (init's death ends
 * its pid namespace, every process in it), and cgroup.kill of its cgroup2 leaf,
 * which takes what the namespace does not hold. */
static void held_kill(const Held *h)
{
        if (h->fds[KEEPER_FD_PIDFD] >= 0)
                (void)syscall(SYS_pidfd_send_signal, h->fds[KEEPER_FD_PIDFD], SIGKILL, NULL, 0);
        if (h->cgroup_kill[0]) {
                char path[KEEPER_PATH_MAX + 16];
                int fd;

                snprintf(path, sizeof path, "%s/cgroup.kill", h->cgroup_kill);
                fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd >= 0) {
                        (void)!write(fd, "1", 1);
                        close(fd);
                }
        }
}

static void kill_all(const char *why)
{
        if (n_held > 0)
                fprintf(stderr, "cella-keeper: %s: killing the %zu app(s) it holds\n", why, n_held);
        for (size_t i = 0; i < n_held; i++)
                held_kill(&held[i]);
        while (n_held > 0)
                held_remove(n_held - 1);
}

static void reply(int sock, KeeperOp op, int error, uint32_t value)
{
        KeeperMsg m = {.magic = KEEPER_MAGIC, .op = op, .error = error, .value = value};

        (void)keeper_msg_send(sock, &m, NULL);
}

static int do_hold(const KeeperMsg *m, int *fds)
{
        ssize_t i;
        int r = keeper_record_check(&m->rec);

        if (r < 0)
                return r;
        i = held_find(m->rec.id);
        if (i >= 0) {
                /* A new run of the same app: the old one's set goes. */
                held_close(&held[i]);
        } else {
                if (n_held >= KEEPER_SETS_MAX)
                        return -ENOSPC;
                if (n_held == cap_held) {
                        size_t c = cap_held ? cap_held * 2 : 64;
                        Held *more = realloc(held, c * sizeof *held);

                        if (!more)
                                return -ENOMEM;
                        held = more;
                        cap_held = c;
                }
                i = (ssize_t)n_held++;
        }
        r = held_set(&held[i], &m->rec);
        if (r < 0) {
                held[i] = held[--n_held];
                return r;
        }
        for (unsigned k = 0; k < _KEEPER_FD_MAX; k++) {
                held[i].fds[k] = fds[k];
                fds[k] = -EBADF;
        }
        return 0;
}

/* Serves one message from client c. Returns false when the client is to go. */
static bool serve(int c, bool *bye)
{
        _cleanup_free_ KeeperMsg *m = malloc(sizeof *m);
        int fds[_KEEPER_FD_MAX];
        bool keep = true;
        int r;

        if (!m)
                return false;
        r = keeper_msg_recv(c, m, fds, 0);
        if (r == -EAGAIN)
                return true;
        if (r < 0)
                return false; /* EOF, or a message we cannot trust: that client goes */
        switch (m->op) {
        case KEEPER_OP_HOLD:
                r = do_hold(m, fds);
                reply(c, r < 0 ? KEEPER_OP_ERROR : KEEPER_OP_OK, r < 0 ? -r : 0, 0);
                break;
        case KEEPER_OP_DROP: {
                ssize_t i;

                m->rec.id[sizeof m->rec.id - 1] = 0;
                i = held_find(m->rec.id);
                if (i >= 0 && held[i].generation == m->rec.generation)
                        held_remove((size_t)i);
                reply(c, KEEPER_OP_OK, 0, 0);
                break;
        }
        case KEEPER_OP_NOTE: {
                ssize_t i;

                m->rec.id[sizeof m->rec.id - 1] = 0;
                i = held_find(m->rec.id);
                if (i >= 0 && held[i].generation == m->rec.generation) {
                        held[i].role = m->rec.role;
                        held[i].frozen = m->rec.frozen;
                }
                reply(c, KEEPER_OP_OK, 0, 0);
                break;
        }
        case KEEPER_OP_TAKE: {
                uint32_t sent = 0;

                for (size_t i = 0; i < n_held; i++) {
                        m->magic = KEEPER_MAGIC;
                        m->op = KEEPER_OP_SET;
                        m->error = 0;
                        held_record(&held[i], &m->rec);
                        if (keeper_msg_send(c, m, held[i].fds) < 0) {
                                keep = false; /* it stopped reading, or went */
                                break;
                        }
                        sent++;
                }
                if (keep)
                        reply(c, KEEPER_OP_END, 0, sent);
                break;
        }
        case KEEPER_OP_BYE:
                reply(c, KEEPER_OP_OK, 0, 0);
                *bye = true;
                break;
        default:
                reply(c, KEEPER_OP_ERROR, EPROTO, 0);
                break;
        }
        for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                safe_close(fds[i]);
        return keep;
}

static void accept_client(int listener)
{
        struct ucred cred;
        socklen_t len = sizeof cred;
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0)
                return;
        /* Root, or the uid we run as (the socket is 0600 in a 0700 folder too). */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
            (cred.uid != 0 && cred.uid != geteuid()) || n_clients >= CLIENTS_MAX) {
                close(fd);
                return;
        }
        /* Replies are small and the client waits for each: blocking sends keep a
         * TAKE of many sets whole. Bounded, so that a client that stops reading
         * (a cellad stopped mid-TAKE) cannot hold the keeper, and its grace, for
         * ever: it is dropped instead. */
        {
                struct timeval tv = {.tv_sec = KEEPER_REPLY_TIMEOUT_MS / 1000,
                                     .tv_usec = (KEEPER_REPLY_TIMEOUT_MS % 1000) * 1000};

                (void)fcntl(fd, F_SETFL, 0);
                (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        }
        clients[n_clients++] = fd;
}

/* DIR/run must be a directory of ours, mode 0700 or stricter, not a symlink. */
static int check_run_dir(const char *dir)
{
        struct stat st;

        if (lstat(dir, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (st.st_uid != geteuid() || (st.st_mode & 077))
                return -EPERM;
        return 0;
}

static int listen_on(const char *state_dir, int ready_fd)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char run[PATH_MAX], lock[PATH_MAX];
        int lock_fd, fd, r;

        if ((size_t)snprintf(run, sizeof run, "%s/run", state_dir) >= sizeof run ||
            (size_t)snprintf(lock, sizeof lock, "%s/%s", state_dir, KEEPER_LOCK) >= sizeof lock ||
            (size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", state_dir, KEEPER_SOCKET) >=
                    sizeof sa.sun_path)
                return -ENAMETOOLONG;
        r = check_run_dir(run);
        if (r < 0) {
                fprintf(stderr, "cella-keeper: %s: %s (it must be a folder of uid %u, mode 0700)\n",
                        run, strerror(-r), (unsigned)geteuid());
                return r;
        }
        /* One keeper per state dir: the lock lives as long as we do (never closed). */
        lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lock_fd < 0)
                return negative_errno();
        if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
                r = negative_errno();
                if (r == -EWOULDBLOCK && ready_fd >= 0)
                        (void)!write(ready_fd, "EXISTS\n", 7);
                close(lock_fd);
                return r == -EWOULDBLOCK ? -EEXIST : r;
        }
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        /* A socket left by a keeper that is gone (we hold the lock). */
        (void)unlink(sa.sun_path);
        {
                mode_t old = umask(0177);

                r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
                umask(old);
        }
        if (r < 0 || chmod(sa.sun_path, 0600) < 0 || listen(fd, 16) < 0) {
                r = negative_errno();
                close(fd);
                return r;
        }
        return fd;
}

static int parse_uint(const char *s, unsigned max, unsigned *ret)
{
        char *end;
        unsigned long v;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"state-dir", required_argument, NULL, 'd'},
                {"grace", required_argument, NULL, 'g'},
                {"ready-fd", required_argument, NULL, 'r'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = NULL;
        unsigned grace_s = KEEPER_GRACE_DEFAULT_S, ready = 0;
        int ready_fd = -1, listener, c;
        uint64_t alone_since;
        bool ever_connected = false;
        bool bye = false;
        struct rlimit rl;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        state_dir = optarg;
                        break;
                case 'g':
                        if (parse_uint(optarg, 86400, &grace_s) < 0) {
                                fprintf(stderr,
                                        "cella-keeper: --grace %s: not a number of "
                                        "seconds in 0..86400\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case 'r':
                        if (parse_uint(optarg, INT_MAX, &ready) < 0 || ready < 3) {
                                fprintf(stderr, "cella-keeper: --ready-fd %s: not an fd >= 3\n",
                                        optarg);
                                return 2;
                        }
                        ready_fd = (int)ready;
                        break;
                case 'h':
                        printf("cella-keeper --state-dir DIR [--grace SECONDS] [--ready-fd N]\n"
                               "Holds the fds of cellad's apps across a restart of cellad "
                               "(started by cellad; docs/daemon.md).\n");
                        return 0;
                default:
                        return 2;
                }
        if (!state_dir || optind != argc) {
                fprintf(stderr, "cella-keeper: usage: cella-keeper --state-dir DIR [--grace "
                                "SECONDS] [--ready-fd N]\n");
                return 2;
        }
        if (ready_fd >= 0 && fcntl(ready_fd, F_SETFD, FD_CLOEXEC) < 0) {
                fprintf(stderr, "cella-keeper: --ready-fd %d: %m\n", ready_fd);
                return 2;
        }
        /* Nothing of our starter's but stdio and the ready fd. */
        if (ready_fd > 3)
                (void)close_range(3, (unsigned)ready_fd - 1, 0);
        (void)close_range((unsigned)(ready_fd >= 3 ? ready_fd + 1 : 3), ~0U, 0);
        (void)prctl(PR_SET_NAME, "cella-keeper", 0, 0, 0);
        (void)chdir("/");
        umask(077);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        {
                struct sigaction sa = {.sa_handler = on_term};

                sigaction(SIGTERM, &sa, NULL);
        }
        /* Up to 8 fds per app: as many as the hard limit allows. */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
        listener = listen_on(state_dir, ready_fd);
        if (listener < 0) {
                if (listener != -EEXIST)
                        fprintf(stderr, "cella-keeper: cannot listen in %s/run: %s\n", state_dir,
                                strerror(-listener));
                return listener == -EEXIST ? 3 : 1;
        }
        if (ready_fd >= 0) {
                char line[32];
                int n = snprintf(line, sizeof line, "READY %d\n", (int)getpid());

                (void)!write(ready_fd, line, (size_t)n);
                close(ready_fd);
        }

        alone_since = now_ms();
        while (!bye && !got_term) {
                struct pollfd p[1 + CLIENTS_MAX];
                int timeout = -1, k;

                p[0] = (struct pollfd){.fd = listener, .events = POLLIN};
                for (size_t i = 0; i < n_clients; i++)
                        p[1 + i] = (struct pollfd){.fd = clients[i], .events = POLLIN};
                /* Its cellad went and left nothing to keep: nothing to wait for
                 * (the next cellad starts a keeper of its own). */
                if (n_clients == 0 && n_held == 0 && ever_connected)
                        break;
                if (n_clients == 0) {
                        /* Before its first client, at least the time a starter is
                         * given to connect (a grace of 0 must not end us before the
                         * cellad that started us is connected). */
                        uint64_t grace_ms = (uint64_t)grace_s * 1000u, now = now_ms(), end;

                        if (!ever_connected && grace_ms < 2 * KEEPER_REPLY_TIMEOUT_MS)
                                grace_ms = 2 * KEEPER_REPLY_TIMEOUT_MS;
                        end = alone_since + grace_ms;

                        if (now >= end) {
                                kill_all("no cellad came back within the grace");
                                break;
                        }
                        timeout = end - now > (uint64_t)INT_MAX ? INT_MAX : (int)(end - now);
                }
                k = poll(p, 1 + n_clients, timeout);
                if (k < 0 && errno != EINTR)
                        break;
                if (k <= 0)
                        continue;
                for (size_t i = n_clients; i > 0; i--) {
                        if (!p[i].revents)
                                continue;
                        if (!serve(clients[i - 1], &bye) ||
                            (p[i].revents & (POLLHUP | POLLERR) && !(p[i].revents & POLLIN))) {
                                close(clients[i - 1]);
                                clients[i - 1] = clients[--n_clients];
                                if (n_clients == 0)
                                        alone_since = now_ms();
                        }
                }
                if (p[0].revents & POLLIN) {
                        accept_client(listener);
                        ever_connected |= n_clients > 0;
                }
        }
        if (got_term) {
                /* A client that hung up just before the signal (a cellad that gave
                 * up on us, then told us to go) is gone, not connected. */
                for (size_t i = n_clients; i > 0; i--) {
                        char b;
                        ssize_t k = recv(clients[i - 1], &b, 1, MSG_PEEK | MSG_DONTWAIT);

                        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                                close(clients[i - 1]);
                                clients[i - 1] = clients[--n_clients];
                        }
                }
                if (n_clients == 0)
                        kill_all("stopped (SIGTERM) with no cellad connected");
        }
        /* BYE, or SIGTERM with a cellad connected: it holds its own copies. The
         * lock is still ours: no other keeper listens on the path yet. */
        while (n_held > 0)
                held_remove(n_held - 1);
        free(held);
        {
                char path[PATH_MAX];

                if ((size_t)snprintf(path, sizeof path, "%s/%s", state_dir, KEEPER_SOCKET) <
                    sizeof path)
                        (void)unlink(path);
        }
        return 0;
}
