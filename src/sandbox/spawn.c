/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sandbox_spawn(): the parent's half and the child's half of starting a sandbox
 * (docs/design.md section 5), and the child's life afterwards as the pid namespace's
 * init.
 *
 * Parent                                   Child (pid 1 of a new pid namespace)
 *   cgroup: create, limit, open its files    |
 *   clone3(NEWNS|NEWPID|NEWIPC|NEWUTS        |
 *          |INTO_CGROUP: the cgroup2 leaf)   join the v1 leaves itself
 *   fork a net helper: unshare(NEWNET),      hostname, cgroup namespace,
 *     loopback up, send the netns fd ──┐     build the jail, pivot_root
 *                                      └───> setns(NEWNET)
 *                                            drop groups, unshare(NEWUSER)
 *   write uid/gid maps <─────── NEED_IDMAP
 *   send IDMAP_DONE ───────────────────────> securebits, become SANDBOX_UID,
 *                                            drop capabilities, no_new_privs,
 *                                            rlimits, seccomp
 *   spec.starting (the caller's work)        (after IDMAP_DONE, overlapping these)
 *   seccomp listener <──────── SECCOMP_FD    (only with a notifying filter)
 *                                            fork ─> app: fds, env, execve
 *   sandbox returned <──────────── STARTED   (or ERROR at any step)
 *                                            init loop (init.c): reaps, forwards
 *                   <──────────── INIT_EXEC  20 ms on: execs cella-init, the same
 *                                            loop in a small executable
 *   ... later ...   <──────────── EXITED     init reports the app's status
 *
 * The network namespace is made by a short-lived helper, not by clone3: creating
 * one costs ~0.8 ms of kernel work (every pernet subsystem initialises), which
 * clone3 would spend in the parent before the child even runs; the helper spends
 * it on another CPU while the child builds its jail. It is still a fresh namespace
 * per sandbox, owned by the caller's user namespace like the others.
 *
 * An OCI jail (SandboxSpec's "OCI jails" fields, docs/oci.md) changes a few steps:
 * clone3 makes only the namespaces its list makes new (mount and pid always), the
 * net helper only a new network namespace; the child joins the listed namespaces,
 * its cgroup and its cgroup namespace before the jail, not after; the user
 * namespace is new (its explicit maps, or cella's), joined (no maps) or absent
 * (host ids); the app's ids, groups and capability sets are the spec's (caps.c,
 * creds_begin()/creds_finish(), a filter loaded before the uid change when
 * no_new_privs stays clear); with a start gate init forks (not vforks) the app and
 * reports STARTED once the app waits at the gate (app_gate()); a detached init
 * ignores ctl's hangup and exits with the app's status.
 *
 * The ctl socket is SOCK_SEQPACKET: one message per report, and EOF when the child
 * dies, so the parent never waits on a dead child. The child carries
 * PR_SET_PDEATHSIG(SIGKILL), re-armed after every credential change (Linux clears
 * it on each), so if the parent dies the init dies, and with it, the namespace.
 * Linux fires it when the *thread* that cloned the child exits, not the process:
 * callers must spawn from a thread that lives as long as the sandbox (the
 * supervisor's single loop thread).
 */
#include <errno.h>
#include <inttypes.h>
#include <time.h>
#include <limits.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "base/macro.h"
#include "sandbox/init.h"
#include "sandbox/sandbox-internal.h"

/* How long the parent waits for the child to answer during setup. A spawn takes
 * milliseconds; this only bounds a child that hangs (e.g. stuck in a frozen cgroup). */
#define SANDBOX_SETUP_TIMEOUT_MS 10000
/* How long sandbox_warm_new() waits for the zygote's reply: it clones two small
 * processes, well under a millisecond on an idle host, a few on a loaded one (2
 * vCPUs under three parallel builds: docs/daemon.md "The warm pool"). The caller
 * is an event loop (cellad's): a hung zygote may hold it this long, once. */
#define SANDBOX_ZYGOTE_TIMEOUT_MS 250

#define SANDBOX_DEFAULT_TMP_SIZE (16ull * 1024 * 1024)

static const char *const step_names[_SANDBOX_STEP_MAX] = {
        [SANDBOX_STEP_NONE] = "none",           [SANDBOX_STEP_PREPARE] = "prepare",
        [SANDBOX_STEP_CGROUP] = "cgroup",       [SANDBOX_STEP_CLONE] = "clone",
        [SANDBOX_STEP_NAMESPACE] = "namespace", [SANDBOX_STEP_MOUNT] = "mount",
        [SANDBOX_STEP_PIVOT] = "pivot_root",    [SANDBOX_STEP_USERNS] = "userns",
        [SANDBOX_STEP_CAPS] = "capabilities",   [SANDBOX_STEP_RLIMIT] = "rlimit",
        [SANDBOX_STEP_SECCOMP] = "seccomp",     [SANDBOX_STEP_EXEC] = "exec",
        [SANDBOX_STEP_INIT] = "init",
};

const char *sandbox_step_to_string(SandboxStep step)
{
        if ((unsigned)step >= _SANDBOX_STEP_MAX)
                return "unknown";
        return step_names[step];
}

static void msg_send_error(int fd, const SandboxError *e)
{
        Msg m = {.type = MSG_ERROR,
                 .step = (int32_t)e->step,
                 .error = e->error,
                 .value = (int32_t)e->exec_cause};

        memcpy(m.detail, e->detail, sizeof m.detail);
        m.detail[sizeof m.detail - 1] = 0;
        (void)send(fd, &m, sizeof m, MSG_NOSIGNAL);
}

/* Receives one message; 0 on success, -EPIPE on EOF, -EBADMSG if malformed. */
static int msg_recv(int fd, Msg *ret)
{
        ssize_t k = recv(fd, ret, sizeof *ret, MSG_CMSG_CLOEXEC);

        if (k < 0)
                return negative_errno();
        if (k == 0)
                return -EPIPE;
        if (k != (ssize_t)sizeof *ret)
                return -EBADMSG;
        ret->detail[sizeof ret->detail - 1] = 0;
        return 0;
}

/* ---- child side ---------------------------------------------------------- */

static int loopback_up(void)
{
        struct ifreq ifr = {.ifr_name = "lo"};
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return negative_errno();
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return negative_errno();
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return negative_errno();
        return 0;
}

/* Most fds one message carries: CGROUP_JOIN_MAX_V1 tasks files, one netns, or a
 * warm start's stdio, channel, pty socket and bind fds (SANDBOX_WARM_MAX_FDS). */
#define MSG_MAX_FDS 16
_Static_assert(MSG_MAX_FDS >= CGROUP_JOIN_MAX_V1, "MSG_MAX_FDS");

_Static_assert(MSG_MAX_FDS <= FD_MSG_MAX_FDS, "a setup message's fds fit fd_msg_send()");

/* Sends m with n fds attached (SCM_RIGHTS). Returns 0 or -errno. */
static int msg_send_fds(int fd, const Msg *m, const int *fds, unsigned n)
{
        ssize_t k = fd_msg_send(fd, m, sizeof *m, fds, n, 0);

        if (k < 0)
                return (int)k;
        return k == (ssize_t)sizeof *m ? 0 : -EIO;
}

/*
 * Receives one message and the fds it carries (at most MSG_MAX_FDS, into fds; *ret_n
 * of them). A truncated message or fd list is -EBADMSG, with every fd closed; the
 * peer gone is -EPIPE.
 */
static int msg_recv_fds(int fd, Msg *ret, int *fds, unsigned *ret_n)
{
        size_t n;
        ssize_t k = fd_msg_recv(fd, ret, sizeof *ret, fds, MSG_MAX_FDS, &n, 0);

        *ret_n = (unsigned)n;
        if (k < 0)
                return (int)k;
        if (k == 0)
                return -EPIPE;
        ret->detail[sizeof ret->detail - 1] = 0;
        return 0;
}

/* How a spec has a namespace type (SandboxSpec.namespaces): made new, joined (an fd),
 * or shared with the caller (left out of the list). A NULL list is cella's own: every
 * type new. */
typedef enum NsMode {
        NS_SHARE,
        NS_NEW,
        NS_JOIN,
} NsMode;

static NsMode ns_mode(const SandboxSpec *spec, int type, int *ret_fd)
{
        if (ret_fd)
                *ret_fd = -EBADF;
        if (!spec->namespaces)
                return NS_NEW;
        for (size_t i = 0; i < spec->n_namespaces; i++) {
                if (spec->namespaces[i].type != type)
                        continue;
                if (spec->namespaces[i].fd < 0)
                        return NS_NEW;
                if (ret_fd)
                        *ret_fd = spec->namespaces[i].fd;
                return NS_JOIN;
        }
        return NS_SHARE;
}

/*
 * The net helper: a plain fork of the caller, root of its user namespace. Makes a
 * new network namespace with loopback up and sends its fd to the child over ctl
 * (the parent's end: what it writes, the child reads). Never returns.
 */
_noreturn_ static void net_helper(int ctl)
{
        Msg m = {.type = MSG_NETNS};
        int r, fd = -EBADF;

        if (unshare(CLONE_NEWNET) < 0)
                r = negative_errno();
        else if ((r = loopback_up()) >= 0 &&
                 (fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
                r = negative_errno();
        if (r < 0) {
                m.error = -r;
                snprintf(m.detail, sizeof m.detail, "%s", "new network namespace with loopback up");
        }
        _exit(msg_send_fds(ctl, &m, &fd, r < 0 ? 0 : 1) < 0 ? 1 : 0);
}

/*
 * In the child, after the jail is built: takes the two messages that arrive while
 * it builds (one, the cgroup's, when have_net: a warm child joined its network
 * namespace while it waited), in whichever order (the helper's netns, the parent's cgroup fds and
 * the app's host uid and gid in *ret_uid, *ret_gid), joins the network namespace
 * and the cgroup, then makes the cgroup namespace (so the app's own cgroup is the
 * root it sees). No app code has run yet.
 */
static int child_join(const SandboxSpec *spec, int ctl, bool have_net, uid_t *ret_uid,
                      gid_t *ret_gid, SandboxError *err)
{
        bool have_cg = false;
        int cgns_fd;
        NsMode cgns = ns_mode(spec, CLONE_NEWCGROUP, &cgns_fd);

        while (!have_net || !have_cg) {
                int fds[MSG_MAX_FDS];
                unsigned n;
                Msg m;
                int r = msg_recv_fds(ctl, &m, fds, &n);

                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_NAMESPACE, r, "receive setup fds");
                if (m.type == MSG_NETNS && !have_net) {
                        if (m.error || n != 1)
                                r = sandbox_fail(
                                        err, SANDBOX_STEP_NAMESPACE, m.error ? -m.error : -EBADMSG,
                                        "%s", m.detail[0] ? m.detail : "no network namespace fd");
                        else if (setns(fds[0], CLONE_NEWNET) < 0)
                                r = sandbox_fail(err, SANDBOX_STEP_NAMESPACE, negative_errno(),
                                                 "join the network namespace");
                        have_net = true;
                } else if (m.type == MSG_CGROUP && !have_cg) {
                        CgroupJoin j = {.unified_fd = -EBADF, .n_v1 = n};

                        *ret_uid = m.host_uid;
                        *ret_gid = m.host_gid;
                        memcpy(j.v1_fds, fds, sizeof(int) * n);
                        n = 0; /* cgroup_join_self() closes them */
                        r = cgroup_join_self(&j);
                        if (r < 0)
                                sandbox_fail(err, SANDBOX_STEP_CGROUP, r, "join the v1 cgroups");
                        have_cg = true;
                } else
                        r = sandbox_fail(err, SANDBOX_STEP_NAMESPACE, -EPROTO,
                                         "unexpected message %u", m.type);
                for (unsigned i = 0; i < n; i++)
                        safe_close(fds[i]);
                if (r < 0)
                        return r;
        }
        /* After the cgroup: a new one's root is the app's own leaf. A joined one
         * (an OCI config's path) is entered here too, so that the order is the same. */
        if (cgns == NS_NEW && unshare(CLONE_NEWCGROUP) < 0)
                return sandbox_fail(err, SANDBOX_STEP_NAMESPACE, negative_errno(),
                                    "cgroup namespace");
        if (cgns == NS_JOIN && setns(cgns_fd, CLONE_NEWCGROUP) < 0)
                return sandbox_fail(err, SANDBOX_STEP_NAMESPACE, negative_errno(),
                                    "join the cgroup namespace (fd %d)", cgns_fd);
        return 0;
}

/*
 * An OCI jail's joins, in the child before its jail (SandboxSpec.namespaces): the
 * network, ipc and uts namespaces it names by fd, then (child_join()) the cgroup and
 * the cgroup namespace, so that what the jail mounts (sysfs, cgroup file systems)
 * shows the namespaces the app will be in. The user namespace comes after the jail
 * (child_run()). Returns 0 or -errno with err filled.
 */
static int child_join_early(const SandboxSpec *spec, int ctl, uid_t *ret_uid, gid_t *ret_gid,
                            SandboxError *err)
{
        static const struct {
                int type;
                const char *name;
        } joins[] = {
                {CLONE_NEWNET, "network"},
                {CLONE_NEWIPC, "ipc"},
                {CLONE_NEWUTS, "uts"},
        };

        for (size_t i = 0; i < ELEMENTSOF(joins); i++) {
                int fd;

                if (ns_mode(spec, joins[i].type, &fd) == NS_JOIN && setns(fd, joins[i].type) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_NAMESPACE, negative_errno(),
                                            "join the %s namespace (fd %d)", joins[i].name, fd);
        }
        /* A joined uts namespace is named only when the caller says so (OCI compat). */
        if (spec->hostname_in_joined_uts && ns_mode(spec, CLONE_NEWUTS, NULL) == NS_JOIN &&
            sethostname(spec->hostname, strnlen(spec->hostname, SANDBOX_HOSTNAME_MAX)) < 0)
                return sandbox_fail(err, SANDBOX_STEP_NAMESPACE, negative_errno(),
                                    "set the hostname of the joined uts namespace");
        return child_join(spec, ctl, ns_mode(spec, CLONE_NEWNET, NULL) != NS_NEW, ret_uid, ret_gid,
                          err);
}

static int child_expect(int ctl, MsgType type)
{
        Msg m;
        int r = msg_recv(ctl, &m);

        if (r < 0)
                return r;
        return m.type == (uint32_t)type ? 0 : -EPROTO;
}

/* Moves fd to a number >= 10 so the dup2()s into 0..3 cannot clobber each other. */
static int move_high(int fd)
{
        if (fd < 0)
                return fd;
        return fcntl(fd, F_DUPFD_CLOEXEC, 10);
}

/*
 * close_range(lo, hi, 0), or, where the kernel lacks it (ENOSYS, before 5.9) or a
 * seccomp filter already loaded denies it (EPERM, EACCES: a config's own filter in
 * OCI compat, loaded while privileged when no_new_privs is off, may not list it, e.g.
 * runtime-tools' default profile), a close() of each fd in [lo, hi] that
 * /proc/self/fd lists, or without /proc of each fd up to the hard RLIMIT_NOFILE
 * (at most 1 << 20). No allocation: safe in the clone child. Returns 0 or -errno of
 * close_range when no fallback applies.
 */
static int close_fds(unsigned lo, unsigned hi)
{
        unsigned end = hi;
        struct rlimit rl;
        int dir, e;

        if (lo > hi)
                return 0;
        if (close_range(lo, hi, 0) >= 0)
                return 0;
        e = errno;
        if (e != ENOSYS && e != EPERM && e != EACCES)
                return -e;
        dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir >= 0) {
                char buf[4096];
                long n;

                while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0)
                        for (long off = 0; off < n;) {
                                struct {
                                        uint64_t ino;
                                        int64_t off;
                                        unsigned short reclen;
                                        unsigned char type;
                                        char name[];
                                } *d = (void *)(buf + off);
                                char *q;
                                unsigned long fd = strtoul(d->name, &q, 10);

                                off += d->reclen;
                                if (*q || q == d->name || fd < lo || fd > hi || (int)fd == dir)
                                        continue;
                                (void)close((int)fd);
                        }
                (void)close(dir);
                if (n == 0)
                        return 0;
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < end)
                end = rl.rlim_max ? (unsigned)rl.rlim_max - 1 : 0;
        if (end > (1u << 20))
                end = 1u << 20;
        for (unsigned fd = lo; fd <= end; fd++)
                (void)close((int)fd);
        return 0;
}

/* Closes fds lo..hi (hi ~0U: to the end) except keep. Returns 0 or -errno. */
static int close_gap(unsigned lo, unsigned hi, int keep)
{
        if (lo > hi)
                return 0;
        if (keep >= 0 && (unsigned)keep >= lo && (unsigned)keep <= hi) {
                int r = (unsigned)keep > lo ? close_fds(lo, (unsigned)keep - 1) : 0;

                if (r < 0)
                        return r;
                lo = (unsigned)keep + 1;
                if (lo == 0 || lo > hi)
                        return 0;
        }
        return close_fds(lo, hi);
}

/* close_gap() keeping two fds (either may be negative). */
static int close_gap2(unsigned lo, unsigned hi, int keep, int keep2)
{
        int r;

        if (keep2 < 0 || (unsigned)keep2 < lo || (unsigned)keep2 > hi)
                return close_gap(lo, hi, keep);
        if ((unsigned)keep2 > lo) {
                r = close_gap(lo, (unsigned)keep2 - 1, keep);
                if (r < 0)
                        return r;
        }
        if ((unsigned)keep2 == UINT_MAX)
                return 0;
        return close_gap((unsigned)keep2 + 1, hi, keep);
}

/*
 * The exec fifo gate (SandboxSpec.start_fifo_fd), in the app's process once all but
 * its execve is done: tells init it is there (one byte "G" on exec_fd, which it then
 * closes: init reports STARTED and sandbox_spawn() returns), opens the fifo for
 * writing through /proc/self/fd (which blocks until a reader opens it: `cella-oci
 * start`), writes one byte "0" and returns, the fifo closed. What fails before the
 * byte is reported on exec_fd as any failure before the execve (the spawn fails);
 * the jail's /proc is needed, and checked before the byte (cella's runtime root
 * always has one; an OCI rootfs without a proc mount fails the spawn here). What
 * fails after it can only be said on the app's stderr, and the app exits 126
 * (runc's way). fifo is an O_CLOEXEC copy of the spec's O_PATH fd. Returns 0, or
 * -errno (with f filled) for a failure before the byte.
 */
static int app_gate(int fifo, int *exec_fd, ExecFailure *f)
{
        char path[64];
        int fd;

        snprintf(path, sizeof path, "/proc/self/fd/%d", fifo);
        /* O_PATH does not open the fifo itself: no wait, and no reader woken. */
        fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
                f->error = errno;
                snprintf(f->detail, sizeof f->detail,
                         "the start gate (exec fifo) cannot be reached through %s: %s (the jail "
                         "needs /proc)",
                         path, strerror(errno));
                return -f->error;
        }
        close(fd);
        if (write(*exec_fd, "G", 1) != 1) {
                f->error = errno;
                snprintf(f->detail, sizeof f->detail, "tell init the app is at its start gate");
                return -f->error;
        }
        *exec_fd = safe_close(*exec_fd);
        fd = RETRY_EINTR(open(path, O_WRONLY | O_CLOEXEC));
        if (fd < 0 || RETRY_EINTR(write(fd, "0", 1)) != 1) {
                dprintf(STDERR_FILENO, "cella: the start gate (exec fifo): %s\n", strerror(errno));
                _exit(126);
        }
        close(fd);
        close(fifo);
        return 0;
}

/* The app: between fork and exec. Never returns. */
_noreturn_ static void app_exec(const SandboxSpec *spec, int exec_fd)
{
        struct sigaction sa = {.sa_handler = SIG_DFL};
        ExecFailure f = {};
        sigset_t none;
        int fds[4], err, fifo = -EBADF;

        /* Start the app with the signal state of a fresh process: cella may ignore
         * SIGPIPE, and ignored signals survive execve. */
        for (int sig = 1; sig < _NSIG; sig++)
                (void)sigaction(sig, &sa, NULL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);

        /* Everything we keep goes above 10 first, so the dup2()s into 0..3 cannot
         * clobber a source that happens to sit at 0..3. */
        exec_fd = move_high(exec_fd);
        if (spec->start_fifo_fd > 0 && (fifo = move_high(spec->start_fifo_fd)) < 0)
                goto fail;
        if (spec->pty_socket > 0) {
                /* Its own terminal as stdio (pty.c); the socket is gone at exec. */
                int pty = pty_make(spec->pty_socket, spec->pty_rows, spec->pty_cols);

                if (pty < 0) {
                        /* Not the entry's fault: never "not found" (127). */
                        f.error = pty == -ENOENT ? ENODEV : -pty;
                        snprintf(f.detail, sizeof f.detail,
                                 "cannot make the app's terminal (a pty of the jail's /dev/pts): "
                                 "%s",
                                 strerror(-pty));
                        goto report;
                }
                for (int i = 0; i < 3; i++)
                        fds[i] = move_high(pty);
        } else
                for (int i = 0; i < 3; i++)
                        fds[i] = move_high(spec->stdio[i] >= 0
                                                   ? spec->stdio[i]
                                                   : open("/dev/null", O_RDWR | O_CLOEXEC));
        fds[3] = spec->channel_fd >= 0 ? move_high(spec->channel_fd) : -EBADF;
        if (exec_fd < 0)
                _exit(126);
        for (int i = 0; i < 4; i++) {
                if (i == 3 && spec->channel_fd < 0) {
                        close(3);
                        continue;
                }
                if (fds[i] < 0 || dup2(fds[i], i) < 0) /* dup2 clears O_CLOEXEC */
                        goto fail;
        }
        /* Nothing else crosses into the app. exec_fd is O_CLOEXEC: it tells init
         * whether execve worked, and closes by itself when it did. The extra fds
         * stay where they are (sorted, >= 4: check_spec()), the gaps between them
         * are closed. */
        {
                int lo = 4;

                for (size_t i = 0; i <= spec->n_extra_fds; i++) {
                        int hi = i < spec->n_extra_fds ? spec->extra_fds[i] : -1;

                        if (close_gap2(lo, hi < 0 ? ~0U : (unsigned)hi - 1, exec_fd, fifo) < 0)
                                goto fail;
                        if (hi < 0)
                                break;
                        if (fcntl(hi, F_SETFD, 0) < 0)
                                goto fail;
                        lo = hi + 1;
                }
        }
        if (spec->umask_set)
                umask((mode_t)spec->umask);
        if (chdir(spec->workdir ?: "/") < 0) {
                /* Named, or the parent would blame the entry ("execute /bin/app"): an
                 * OCI cwd the app's id may not enter (a 0700 directory of an unmapped
                 * owner under policy cella) is the usual cause. */
                f.error = errno;
                (void)snprintf(f.detail, sizeof f.detail, "working directory %s",
                               spec->workdir ?: "/");
                goto report;
        }
        for (size_t i = 0; spec->entry_scripts && spec->entry_scripts[i]; i++) {
                f.error = exec_diagnose(spec->entry_scripts[i], 0, &f.cause, f.detail,
                                        sizeof f.detail);
                if (f.error != 0)
                        goto report;
        }
        if (fifo >= 0) {
                /* A missing entry fails the spawn (cella-oci create), as runc's does,
                 * not the start. */
                if (access(spec->exec_path, X_OK) < 0) {
                        err = errno;
                        f.error = exec_diagnose(spec->exec_path, err, &f.cause, f.detail,
                                                sizeof f.detail);
                        goto report;
                }
                if (app_gate(fifo, &exec_fd, &f) < 0)
                        goto report;
        }
        execve(spec->exec_path, spec->argv, spec->envp);
        /* Why (execdiag.c): only now, off the start path. */
        err = errno;
        f.error = exec_diagnose(spec->exec_path, err, &f.cause, f.detail, sizeof f.detail);
        if (exec_fd < 0) {
                /* Past the gate: init reported STARTED already; the app's stderr is the
                 * one place left (runc's words, then the fact). */
                char what[64];

                /* strerror in lower case, as runc's (Go's) errors read. */
                snprintf(what, sizeof what, "%s", strerror(err));
                if (what[0] >= 'A' && what[0] <= 'Z')
                        what[0] = (char)(what[0] - 'A' + 'a');
                dprintf(STDERR_FILENO, "exec: \"%s\": %s%s%s\n", spec->argv[0], what,
                        f.detail[0] ? ": " : "", f.detail);
                _exit(f.error == ENOENT ? 127 : 126);
        }
        goto report;
fail:
        f.error = errno;
        (void)snprintf(f.detail, sizeof f.detail, "set up the app's file descriptors");
report:
        (void)!write(exec_fd, &f, sizeof f);
        _exit(f.error == ENOENT ? 127 : 126);
}

/*
 * Loads the filter into init (and so into the app it forks). A notifying filter's
 * listener goes to the parent before anything else happens: from here on, a
 * denied call blocks until the parent answers it. init itself makes only allowed
 * calls from here to its exit, so it never waits on a parent still in
 * sandbox_spawn(). Our copy is closed before the app is forked.
 */
static int child_load_seccomp(const SeccompProgram *p, int ctl, SandboxError *err)
{
        Msg m = {.type = MSG_SECCOMP_FD};
        int fd, r;

        if (!p->notify) {
                r = seccomp_program_load(p);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_SECCOMP, r,
                                            "load the seccomp filter");
                return 0;
        }
        fd = seccomp_program_load_listener(p);
        if (fd < 0)
                return sandbox_fail(err, SANDBOX_STEP_SECCOMP, fd,
                                    "load the seccomp filter with a listener");
        r = msg_send_fds(ctl, &m, &fd, 1);
        safe_close(fd);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_SECCOMP, r, "send the seccomp listener");
        return 0;
}

/*
 * Closes every fd of this process but ctl, init_fd (when >= 0), the app's stdio
 * and channel and the extra fds: the caller (a kernel running hundreds of apps)
 * may hold thousands, and every fd made from here on (the seccomp listener, the exec pipe, the
 * app's copies) must get a number under the app's RLIMIT_NOFILE, which is the lowest free one.
 * Allocates nothing (the caller may have threads). Returns 0 or -errno.
 */
static int close_unneeded_fds(const SandboxSpec *spec, int ctl, int init_fd)
{
        int keep[8];
        size_t n = 0, ik = 0, ie = 0;
        unsigned lo = 0;
        int r;

        keep[n++] = ctl;
        if (init_fd >= 0)
                keep[n++] = init_fd;
        for (int i = 0; i < 3; i++)
                if (spec->stdio[i] >= 0)
                        keep[n++] = spec->stdio[i];
        if (spec->channel_fd >= 0)
                keep[n++] = spec->channel_fd;
        if (spec->pty_socket > 0)
                keep[n++] = spec->pty_socket;
        if (spec->start_fifo_fd > 0)
                keep[n++] = spec->start_fifo_fd;
        for (size_t i = 1; i < n; i++) /* insertion sort of at most 8 */
                for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
                        int t = keep[j];

                        keep[j] = keep[j - 1];
                        keep[j - 1] = t;
                }
        for (;;) {
                int a = ik < n ? keep[ik] : INT_MAX,
                    b = ie < spec->n_extra_fds ? spec->extra_fds[ie] : INT_MAX,
                    next = a < b ? a : b;

                if (next == INT_MAX)
                        return close_fds(lo, ~0U);
                if ((unsigned)next > lo && (r = close_fds(lo, (unsigned)next - 1)) < 0)
                        return r;
                lo = (unsigned)next + 1;
                if (a == next)
                        ik++;
                if (b == next)
                        ie++;
        }
}

/*
 * In the child, just before it makes its user namespace: switches real, effective
 * and saved ids to the app's host uid and gid, keeping its capabilities (KEEPCAPS,
 * then the effective set raised again from the permitted one).
 *
 * Why: the kernel counts per-user resources per user namespace and uid, and
 * charges each level up to the host's to the uid that *created* the namespace
 * (user_namespace.ucounts): inotify instances and watches, user namespaces, and
 * the rlimit counts of RLIMIT_NPROC, RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE and
 * RLIMIT_MEMLOCK (kernel/ucount.c, inc_ucount() and inc_rlimit_ucounts()). A
 * namespace made by root would put every app on root's host counts: one app taking
 * all of fs.inotify.max_user_instances left root's (systemd's, cella's) and every
 * other app's inotify_init1() failing with EMFILE. Made by the app's own host uid,
 * each app is charged alone (test_per_user_limits_are_each_apps_own).
 *
 * The capabilities keep the unshare a privileged one, which kernels restricting
 * unprivileged user namespaces (Debian's kernel.unprivileged_userns_clone=0,
 * Ubuntu's AppArmor userns restriction) still allow; they only apply in the host's
 * user namespace, which the child leaves at the unshare right after.
 * Returns 0 or -errno with err filled.
 */
static int become_host_user(uid_t uid, gid_t gid, SandboxError *err)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {};
        uid_t ru, eu, su;

        if (uid == 0 || gid == 0)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, -EINVAL,
                                    "the app may not run as host root");
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, negative_errno(),
                                    "keep capabilities");
        if (sandbox_setresgid(gid, gid, gid) < 0 || sandbox_setresuid(uid, uid, uid) < 0)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, negative_errno(),
                                    "switch to host uid %u gid %u", (unsigned)uid, (unsigned)gid);
        if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, -EPERM, "host uid did not change");
        if (syscall(SYS_capget, &h, d) < 0)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, negative_errno(), "capget");
        d[0].effective = d[0].permitted;
        d[1].effective = d[1].permitted;
        if (syscall(SYS_capset, &h, d) < 0)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, negative_errno(),
                                    "raise capabilities again");
        return 0;
}

/* Closes every fd but a and b (either may be negative). */
static void close_all_but(int a, int b)
{
        unsigned lo = 0;

        if (a > b) {
                int t = a;

                a = b;
                b = t;
        }
        for (int i = 0; i < 2; i++) {
                int keep = i == 0 ? a : b;

                if (keep < 0)
                        continue;
                if ((unsigned)keep > lo)
                        (void)close_fds(lo, (unsigned)keep - 1);
                lo = (unsigned)keep + 1;
        }
        (void)close_fds(lo, ~0U);
}

/*
 * Whether fd (O_PATH) may become the sandbox's init: a regular file owned by root
 * and readable by nobody but root. Init runs as the app's uid; exec'ing a file it
 * can read would leave it dumpable, and the app could then open /proc/1/mem and
 * take over init and its ctl socket. A file it cannot read makes the exec set
 * dumpable to fs.suid_dumpable (0 or 2: not the app's); cella-init also drops it
 * itself first thing, for a host with 1.
 */
static bool init_file_ok(int fd)
{
        struct stat st;

        return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 &&
               (st.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH)) == 0;
}

/*
 * Whether the host's fs.suid_dumpable is 1 ("debug": every process dumpable,
 * Documentation/admin-guide/sysctl/fs.rst). An exec of a file we cannot read then
 * leaves us dumpable until cella-init's first prctl, a window in which the app
 * (our uid) could open /proc/1/mem and keep it: init stays the built-in loop
 * there (SANDBOX_INIT_DUMPABLE_HOST). Read before the jail hides /proc/sys.
 */
static bool host_suid_dumpable_debug(void)
{
        char c = 0;
        int fd = open("/proc/sys/fs/suid_dumpable", O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return false;
        if (read(fd, &c, 1) != 1)
                c = 0;
        close(fd);
        return c == '1';
}

/*
 * Once the app has run SANDBOX_INIT_EXEC_DELAY_MS: init execs cella-init
 * (spec->init_path, opened as init_fd before the jail hid the host's paths;
 * init_errno if that failed), so that the process that lives as long as the app
 * is a small executable of its own, not a copy of the caller's memory. What it
 * needs crosses the exec: ctl and the app's pid as argv, the blocked signals, the
 * parent-death signal (execve keeps it for a binary that gains no privileges, and
 * no_new_privs makes sure of that), the seccomp filter (init's calls stay within
 * the app's allowlist), the credentials. Returns only if there is no cella-init or
 * its exec failed, after telling the parent (MSG_INIT_EXEC): the caller then runs
 * the same loop, built in.
 */
static void init_become_small(const SandboxSpec *spec, int ctl, pid_t app, int init_fd,
                              int init_errno)
{
        char ctl_arg[16], app_arg[16];
        char *argv[] = {(char *)"cella-init", ctl_arg, app_arg,
                        spec->detached ? (char *)"detached" : NULL, NULL};
        char *envp[] = {NULL};

        if (!spec->init_path)
                return;
        if (init_fd >= 0) {
                snprintf(ctl_arg, sizeof ctl_arg, "%d", ctl);
                snprintf(app_arg, sizeof app_arg, "%d", (int)app);
                /* ctl crosses the exec (it was made O_CLOEXEC for the app's sake;
                 * the app has exec'd by now). */
                if (fcntl(ctl, F_SETFD, 0) < 0 ||
                    execveat(init_fd, "", argv, envp, AT_EMPTY_PATH) < 0)
                        init_errno = errno;
                safe_close(init_fd);
        }
        (void)sandbox_msg_send(ctl, MSG_INIT_EXEC, init_errno);
}

/*
 * Makes Linux send init SIGIO when the last copy of the parent's end of ctl is
 * closed (unix_release_sock() wakes the peer with POLL_HUP; O_ASYNC and F_SETOWN
 * turn that into a signal to us): init then exits and the pid namespace dies
 * with it (sandbox_init_wait()). So a sandbox lives exactly as long as someone
 * holds its ctl socket: the kernel that spawned it, or a keeper it handed a copy
 * to (SandboxSpec.survive_parent, src/keeper). Set after IDMAP_DONE, the last
 * message the parent sends, with SIGIO already blocked (sandbox_init_signals()):
 * its default action would end us. The parent is alive here (it waits for
 * STARTED), so no hangup can have been missed. Returns 0 or -errno.
 */
static int watch_ctl_hangup(int ctl)
{
        int fl = fcntl(ctl, F_GETFL);

        if (fl < 0 || fcntl(ctl, F_SETOWN, getpid()) < 0 || fcntl(ctl, F_SETFL, fl | O_ASYNC) < 0)
                return negative_errno();
        return 0;
}

/* Opens spec's cella-init (init_path) while the host's paths are still ours (the
 * jail hides them); exec'd once the app runs. *ret_fd -EBADF with *ret_errno why
 * when it cannot be used. */
static void open_init(const char *init_path, int *ret_fd, int *ret_errno)
{
        int fd;

        *ret_fd = -EBADF;
        *ret_errno = 0;
        if (!init_path)
                return;
        fd = open(init_path, O_PATH | O_CLOEXEC);
        if (fd < 0)
                *ret_errno = errno;
        else if (!init_file_ok(fd)) {
                *ret_errno = EPERM;
                safe_close(fd);
        } else if (host_suid_dumpable_debug()) {
                *ret_errno = SANDBOX_INIT_DUMPABLE_HOST;
                safe_close(fd);
        } else
                *ret_fd = fd;
}

/* What child_join() learnt, when a child did it before its jail (an OCI jail's). */
typedef struct ChildJoined {
        uid_t host_uid;
        gid_t host_gid;
} ChildJoined;

_noreturn_ static void child_run(const SandboxSpec *spec, int ctl, int init_fd_in,
                                 int init_errno_in, bool have_net, const ChildJoined *joined);

_noreturn_ static void child_main(const SandboxSpec *spec, int ctl)
{
        SandboxError err = {};
        ChildJoined joined = {};
        bool early = spec->namespaces || spec->rootfs;
        int init_fd, init_errno, r;

        if (!spec->survive_parent && prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(1);
        open_init(spec->init_path, &init_fd, &init_errno);
        if (setsid() < 0) {
                r = sandbox_fail(&err, SANDBOX_STEP_NAMESPACE, negative_errno(), "setsid");
                goto fail;
        }
        /* Only in a uts namespace of our own: a shared or joined one is not ours to
         * name (unless hostname_in_joined_uts: child_join_early()). */
        if (ns_mode(spec, CLONE_NEWUTS, NULL) == NS_NEW &&
            sethostname(spec->hostname, strnlen(spec->hostname, SANDBOX_HOSTNAME_MAX)) < 0) {
                r = sandbox_fail(&err, SANDBOX_STEP_NAMESPACE, negative_errno(), "sethostname");
                goto fail;
        }
        /* An OCI jail joins first, so that its mounts see the app's namespaces;
         * cella's overlaps the joins with the jail's build (child_run()). */
        if (early) {
                r = child_join_early(spec, ctl, &joined.host_uid, &joined.host_gid, &err);
                if (r < 0)
                        goto fail;
        }
        /* An OCI root is built later, in the sandbox's namespaces (child_run()). */
        r = spec->rootfs ? 0 : jail_build(spec, &err);
        if (r < 0)
                goto fail;
        child_run(spec, ctl, init_fd, init_errno, false, early ? &joined : NULL);
fail:
        msg_send_error(ctl, &err);
        _exit(1);
}

/*
 * The child's steps from the cgroup and network joins to the app's exec, the same
 * for a cold spawn and a warm one: with its jail built (pivoted; an OCI root,
 * spec->rootfs, is built here right after the joins, in the sandbox's namespaces),
 * root of the caller's user namespace, holding ctl and init_fd_in (cella-init, or
 * -EBADF and init_errno_in). Never returns.
 */
_noreturn_ static void child_run(const SandboxSpec *spec, int ctl, int init_fd_in,
                                 int init_errno_in, bool have_net, const ChildJoined *joined)
{
        SandboxError err = {};
        uid_t host_uid = 0;
        gid_t host_gid = 0;
        _cleanup_close_pair_ int exec_pipe[2] = {-EBADF, -EBADF};
        ExecFailure ef;
        /* volatile: live across the vfork() below */
        volatile int init_fd = init_fd_in, init_errno = init_errno_in;
        AppCreds creds = {
                .uid = spec->ids_set ? spec->app_uid : SANDBOX_UID,
                .gid = spec->ids_set ? spec->app_gid : SANDBOX_GID,
                .groups = spec->app_groups,
                .n_groups = spec->n_app_groups,
                .caps = spec->caps,
                .allow_new_privs = spec->allow_new_privs,
        };
        const bool gate = spec->start_fifo_fd > 0;
        int userns_fd;
        const NsMode userns = ns_mode(spec, CLONE_NEWUSER, &userns_fd);
        sigset_t mask;
        pid_t app;
        ssize_t k;
        int r;

        if (joined) {
                host_uid = joined->host_uid;
                host_gid = joined->host_gid;
        } else {
                r = child_join(spec, ctl, have_net, &host_uid, &host_gid, &err);
                if (r < 0)
                        goto fail;
        }
        if (spec->rootfs) {
                r = jail_build_rootfs(spec, &err);
                if (r < 0)
                        goto fail;
        }
        /* Without a user namespace SANDBOX_UID would be host uid 1000, someone's:
         * ids unset are then the app's own host ids. */
        if (userns == NS_SHARE && !spec->ids_set) {
                creds.uid = host_uid;
                creds.gid = host_gid;
        }

        /* We are still root of the caller's user namespace with its supplementary
         * groups: drop them now, as setgroups() is denied inside (the app's own, if
         * any, are set inside: creds_begin()). */
        if (sandbox_setgroups_none() < 0) {
                r = sandbox_fail(&err, SANDBOX_STEP_USERNS, negative_errno(), "setgroups");
                goto fail;
        }
        if (userns == NS_JOIN && setns(userns_fd, CLONE_NEWUSER) < 0) {
                r = sandbox_fail(&err, SANDBOX_STEP_USERNS, negative_errno(),
                                 "join the user namespace (fd %d)", userns_fd);
                goto fail;
        }
        /* NS_SHARE (an OCI jail without a user namespace): the app gets host ids. */
        r = userns == NS_NEW ? become_host_user(host_uid, host_gid, &err) : 0;
        if (r < 0)
                goto fail;
        if (userns == NS_NEW && unshare(CLONE_NEWUSER) < 0) {
                /* The two ways a host refuses this, named so the user can fix them. */
                r = negative_errno();
                sandbox_fail(&err, SANDBOX_STEP_USERNS, r, "unshare user namespace%s",
                             r == -ENOSPC  ? " (user.max_user_namespaces is 0 or reached)"
                             : r == -EPERM ? " (refused: a seccomp filter or LSM around cella "
                                             "forbids user namespaces?)"
                                           : "");
                goto fail;
        }
        /* Sent whatever the user namespace: the parent maps only a new one, and its
         * net_ready and starting work hangs on this exchange. */
        if (sandbox_msg_send(ctl, MSG_NEED_IDMAP, 0) < 0 || child_expect(ctl, MSG_IDMAP_DONE) < 0)
                _exit(1);

        /* Groups, then securebits locked (or the bounding set and KEEPCAPS), ids,
         * capabilities (caps.c). Without no_new_privs a filter needs CAP_SYS_ADMIN,
         * which the app may not keep: then it is loaded here, while privileged, as
         * runc does, and every call from here to the execve must be allowed by it
         * (the builtin allowlist allows them). */
        r = creds_begin(&creds, &err);
        if (r < 0)
                goto fail;
        if (spec->allow_new_privs) {
                r = child_load_seccomp(spec->seccomp, ctl, &err);
                if (r < 0)
                        goto fail;
        }
        r = creds_finish(&creds, &err);
        if (r < 0)
                goto fail;
        /* Every credential change cleared the parent-death signal: arm it again
         * (not with survive_parent: then the ctl hangup alone ends the sandbox,
         * see watch_ctl_hangup()), then make sure the parent did not die before it
         * was armed. Each one also set dumpable to fs.suid_dumpable, which a host
         * may have at 1: init, a copy of the caller's memory, must not be open to
         * the app (our uid) by /proc/1/mem. */
        if ((!spec->survive_parent && prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) ||
            prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                _exit(1);
        {
                struct pollfd p = {.fd = ctl, .events = POLLOUT};

                if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLERR)))
                        _exit(1);
        }
        r = close_unneeded_fds(spec, ctl, init_fd);
        if (r < 0) {
                sandbox_fail(&err, SANDBOX_STEP_RLIMIT, r, "close the caller's fds");
                goto fail;
        }
        r = rlimits_apply(spec, &err);
        if (r < 0)
                goto fail;

        /* The parent's starting() must be done before the app runs (wait_starting);
         * before the ctl hangup is watched, whose SIGIO a message would raise too. */
        if (spec->wait_starting && child_expect(ctl, MSG_GO) < 0)
                _exit(1);

        r = sandbox_init_signals(&mask);
        /* Detached: the sandbox outlives ctl (cella-oci's create exits). */
        if (r >= 0 && !spec->detached)
                r = watch_ctl_hangup(ctl);
        if (r < 0) {
                sandbox_fail(&err, SANDBOX_STEP_EXEC, r, "set up signal forwarding");
                goto fail;
        }

        if (!spec->allow_new_privs) {
                r = child_load_seccomp(spec->seccomp, ctl, &err);
                if (r < 0)
                        goto fail;
        }

        if (pipe2(exec_pipe, O_CLOEXEC) < 0) {
                r = sandbox_fail(&err, SANDBOX_STEP_EXEC, negative_errno(), "pipe");
                goto fail;
        }
        /* vfork: init only waits meanwhile, and the app side makes nothing but
         * system calls before execve, so copying init's page tables (init is
         * still a fork of the caller here) would be wasted work. With a start gate
         * the app waits at the gate for as long as `start` takes, and init must go
         * on: a fork. */
        app = gate ? fork() : vfork();
        if (app < 0) {
                r = sandbox_fail(&err, SANDBOX_STEP_EXEC, negative_errno(), "fork the app");
                goto fail;
        }
        if (app == 0) {
                safe_close(exec_pipe[0]);
                app_exec(spec, exec_pipe[1]);
        }
        exec_pipe[1] = safe_close(exec_pipe[1]);
        k = RETRY_EINTR(read(exec_pipe[0], &ef, sizeof ef));
        if (gate && k == 0) {
                /* Ended before its gate, without a word (killed meanwhile). */
                int status = 0;

                waitpid(app, &status, 0);
                r = sandbox_fail(&err, SANDBOX_STEP_EXEC, -ECHILD,
                                 "the app ended before its start gate (status %#x)", status);
                goto fail;
        }
        if (k == sizeof ef) {
                int status;

                waitpid(app, &status, 0);
                ef.detail[sizeof ef.detail - 1] = 0;
                if (ef.detail[0]) {
                        r = sandbox_fail(&err, SANDBOX_STEP_EXEC, -ef.error, "%s", ef.detail);
                        if (ef.cause > 0 && ef.cause < _SANDBOX_EXEC_CAUSE_MAX)
                                err.exec_cause = (SandboxExecCause)ef.cause;
                } else
                        r = sandbox_fail(&err, SANDBOX_STEP_EXEC, -ef.error, "execute %s",
                                         spec->exec_path);
                goto fail;
        }
        exec_pipe[0] = safe_close(exec_pipe[0]);

        /* init keeps nothing of the app's: not its stdio, not its channel. */
        close_all_but(ctl, init_fd);
        if (sandbox_msg_send(ctl, MSG_STARTED, app) < 0)
                _exit(1);
        if (spec->init_path)
                (void)sandbox_init_wait(ctl, app, SANDBOX_INIT_EXEC_DELAY_MS,
                                        spec->detached ? SANDBOX_INIT_DETACHED : 0);
        init_become_small(spec, ctl, app, init_fd, init_errno);
        sandbox_init_loop(ctl, app, spec->detached ? SANDBOX_INIT_DETACHED : 0);

fail:
        msg_send_error(ctl, &err);
        _exit(1);
}

/* ---- parent side --------------------------------------------------------- */

/* Whether spec uses any of the OCI fields (SandboxSpec, "OCI jails"). */
static bool spec_is_oci(const SandboxSpec *spec)
{
        return spec->rootfs || spec->namespaces || spec->ids_set || spec->n_app_groups ||
               spec->n_uid_map || spec->n_gid_map || spec->caps || spec->allow_new_privs ||
               spec->n_rlimits || spec->umask_set || spec->start_fifo_fd > 0 || spec->detached;
}

/*
 * The app's ids must be mapped in its new user namespace (an unmapped id makes
 * setresuid/setgroups fail with EINVAL in the child, too late to say why). With the
 * host_uid map and no block only SANDBOX_UID and SANDBOX_GID are. Called before the
 * clone, and again after spec->prepare (it may set host_ids_base).
 */
static int check_ids_mapped(const SandboxSpec *spec, SandboxError *err)
{
        const char *hint = spec->n_uid_map ? "" : " (give host_ids_base, or uid and gid maps)";

        if (ns_mode(spec, CLONE_NEWUSER, NULL) != NS_NEW)
                return 0;
        if (spec->ids_set && !userns_maps_id(spec, true, spec->app_uid))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "the app's uid %u is not mapped in its user namespace%s",
                                    (unsigned)spec->app_uid, hint);
        if (spec->ids_set && !userns_maps_id(spec, false, spec->app_gid))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "the app's gid %u is not mapped in its user namespace%s",
                                    (unsigned)spec->app_gid, hint);
        for (size_t i = 0; i < spec->n_app_groups; i++)
                if (!userns_maps_id(spec, false, spec->app_groups[i]))
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "the app's supplementary group %u is not mapped in "
                                            "its user namespace%s",
                                            (unsigned)spec->app_groups[i], hint);
        return 0;
}

/* The OCI fields' checks (SandboxSpec, "OCI jails"; docs/oci.md). */
static int check_oci(const SandboxSpec *spec, SandboxError *err)
{
        static const int types[] = {CLONE_NEWNS,  CLONE_NEWPID,    CLONE_NEWNET, CLONE_NEWIPC,
                                    CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWUSER};
        struct rlimit rl;
        bool have_userns;
        struct stat st;
        int r;

        if (spec->namespaces) {
                for (size_t i = 0; i < spec->n_namespaces; i++) {
                        const SandboxNamespace *n = &spec->namespaces[i];
                        bool known = false;

                        for (size_t t = 0; t < ELEMENTSOF(types); t++)
                                known |= n->type == types[t];
                        if (!known || n->fd < -1)
                                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                                    "namespace %zu: type %#x, fd %d", i, n->type,
                                                    n->fd);
                        for (size_t j = 0; j < i; j++)
                                if (spec->namespaces[j].type == n->type)
                                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                                            "namespace type %#x listed twice",
                                                            n->type);
                }
                /* The jail is built in its own mount namespace (pivot_root): one shared
                 * or joined would be the caller's or another's to rebuild. And init
                 * must be pid 1 of its own pid namespace: it reaps, and its end ends
                 * everything. */
                if (ns_mode(spec, CLONE_NEWNS, NULL) != NS_NEW)
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "the mount namespace must be a new one (the jail "
                                            "is built in it)");
                if (ns_mode(spec, CLONE_NEWPID, NULL) != NS_NEW)
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "the pid namespace must be a new one (the "
                                            "sandbox's init is its pid 1)");
        }
        have_userns = ns_mode(spec, CLONE_NEWUSER, NULL) != NS_SHARE;
        if (spec->n_app_groups > 0 && (!spec->app_groups || spec->n_app_groups > NGROUPS_MAX))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL, "%zu supplementary groups",
                                    spec->n_app_groups);
        if (ns_mode(spec, CLONE_NEWUSER, NULL) == NS_NEW) {
                r = userns_check_maps(spec, err);
                if (r < 0)
                        return r;
        }
        if (spec->caps) {
                const SandboxCaps *c = spec->caps;

                if ((c->effective & ~c->permitted) ||
                    (c->ambient & ~(c->permitted & c->inheritable)))
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "capabilities: the effective set must lie in the "
                                            "permitted one and the ambient set in both the "
                                            "permitted and the inheritable ones "
                                            "(capabilities(7))");
        }
        if (spec->allow_new_privs && !spec->caps && have_userns)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "no_new_privs may be left clear only with capabilities or "
                                    "host ids");
        for (size_t i = 0; i < spec->n_rlimits; i++) {
                const SandboxRlimit *l = &spec->rlimits[i];
                const char *name = rlimit_name(l->resource);

                if (!spec->rlimits || !name || l->soft > l->hard)
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "rlimit %zu: resource %d, soft %llu, hard %llu", i,
                                            l->resource, (unsigned long long)l->soft,
                                            (unsigned long long)l->hard);
                for (size_t j = 0; j < i; j++)
                        if (spec->rlimits[j].resource == l->resource)
                                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                                    "%s listed twice", name);
                /* The child sets it without CAP_SYS_RESOURCE in the host's user
                 * namespace: it can only lower a hard limit. */
                if (getrlimit(l->resource, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
                    l->hard > rl.rlim_max)
                        return sandbox_fail(err, SANDBOX_STEP_RLIMIT, -EPERM,
                                            "%s hard limit %llu is above the caller's %llu (only "
                                            "CAP_SYS_RESOURCE in the host's user namespace may "
                                            "raise it)",
                                            name, (unsigned long long)l->hard,
                                            (unsigned long long)rl.rlim_max);
        }
        if (spec->umask_set && (spec->umask < 0 || spec->umask > 0777))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL, "umask %#o",
                                    (unsigned)spec->umask);
        if (spec->start_fifo_fd > 0 &&
            (fstat(spec->start_fifo_fd, &st) < 0 || !S_ISFIFO(st.st_mode)))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "start_fifo_fd %d is not a fifo", spec->start_fifo_fd);
        if (spec->detached && !spec->survive_parent)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "detached needs survive_parent");
        return spec->prepare ? 0 : check_ids_mapped(spec, err);
}

static int check_spec(const SandboxSpec *spec, SandboxError *err)
{
        struct rlimit rl;
        int r;

        if (!spec->seccomp)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL, "no seccomp filter");
        if (rootfs_check_spec(spec, err) < 0)
                return -err->error;
        /* Only a new user namespace is made by the app's host uid (become_host_user()). */
        if (!spec->prepare && (spec->host_uid == 0 || spec->host_gid == 0) &&
            ns_mode(spec, CLONE_NEWUSER, NULL) == NS_NEW)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "the app may not run as host root");
        r = check_oci(spec, err);
        if (r < 0)
                return r;
        if (!spec->hostname || !*spec->hostname)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL, "no hostname");
        if (spec->wait_starting && !spec->starting)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "wait_starting without starting");
        if (!spec->exec_path || spec->exec_path[0] != '/' || !spec->argv || !spec->argv[0] ||
            !spec->envp)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                    "no absolute entry point or argv");
        if (spec->n_extra_fds > SANDBOX_EXTRA_FDS_MAX || (spec->n_extra_fds && !spec->extra_fds))
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL, "%zu extra fds",
                                    spec->n_extra_fds);
        for (size_t i = 0; i < spec->n_extra_fds; i++)
                if (spec->extra_fds[i] < 4 ||
                    (i > 0 && spec->extra_fds[i] <= spec->extra_fds[i - 1]))
                        return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                            "extra fd %d is below 4 or out of order",
                                            spec->extra_fds[i]);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && spec->rlimit_nofile > rl.rlim_max)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -EPERM,
                                    "files limit %llu exceeds this host's hard limit %llu",
                                    (unsigned long long)spec->rlimit_nofile,
                                    (unsigned long long)rl.rlim_max);
        return 0;
}

static void reap(pid_t pid, int pidfd, siginfo_t *ret)
{
        siginfo_t si = {};

        if (pidfd >= 0) {
                (void)RETRY_EINTR(waitid(P_PIDFD, pidfd, &si, WEXITED));
        } else {
                (void)RETRY_EINTR(waitid(P_PID, pid, &si, WEXITED));
        }
        if (ret)
                *ret = si;
}

/* The net helper exits right after sending; reap it (it is not in the sandbox). */
static void reap_helper(pid_t helper)
{
        if (helper <= 0)
                return;
        (void)RETRY_EINTR(waitpid(helper, NULL, 0));
}

/*
 * Waits for one setup message; -ETIMEDOUT after SANDBOX_SETUP_TIMEOUT_MS. The fd
 * it carries goes to *ret_fd (else -EBADF): exactly one with MSG_SECCOMP_FD, none
 * with any other message, or -EPROTO with every fd closed.
 */
static int parent_recv(int ctl, Msg *m, int *ret_fd)
{
        int fds[MSG_MAX_FDS];
        unsigned n = 0;
        struct pollfd p = {.fd = ctl, .events = POLLIN};
        int r;

        r = RETRY_EINTR(poll(&p, 1, SANDBOX_SETUP_TIMEOUT_MS));
        if (r < 0)
                return negative_errno();
        if (r == 0)
                return -ETIMEDOUT;
        *ret_fd = -EBADF;
        r = msg_recv_fds(ctl, m, fds, &n);
        /* A child that fails before reading the helper's netns exits with it unread,
         * and Linux then resets our end: recv reports ECONNRESET (once) ahead of the
         * ERROR still queued. Read again to get that, or EOF. */
        if (r == -ECONNRESET)
                r = msg_recv_fds(ctl, m, fds, &n);
        if (r < 0)
                return r;
        if (m->type == MSG_SECCOMP_FD && n == 1) {
                *ret_fd = fds[0];
                return 0;
        }
        for (unsigned i = 0; i < n; i++)
                safe_close(fds[i]);
        return m->type == MSG_SECCOMP_FD || n > 0 ? -EPROTO : 0;
}

/* How a child comes to be in its cgroup's leaves. */
typedef enum CgroupEntry {
        /* Born in the cgroup2 leaf (CLONE_INTO_CGROUP), it joins the v1 ones itself
         * at MSG_CGROUP (a cold spawn). */
        CGROUP_ENTRY_CHILD,
        /* The parent writes its pid to every leaf (Linux < 5.7: no
         * CLONE_INTO_CGROUP). */
        CGROUP_ENTRY_PARENT,
        /* In every leaf already, which exists (a warm sandbox's, sandbox_warm_new()):
         * only the limits are left. */
        CGROUP_ENTRY_DONE,
} CgroupEntry;

/* Writes adj to the oom_score_adj of every process listed in cg's cgroup2 leaf (or,
 * without one, its v1 pids or memory leaf). A process gone meanwhile is skipped.
 * Returns 0 or -errno. */
static int set_leaf_oom_score_adj(Cgroup *cg, int adj)
{
        pid_t pids[64];
        const char *dir;
        int n;

        if (!cg)
                return 0;
        dir = cgroup_path(cg, "") ?: cgroup_path(cg, "pids") ?: cgroup_path(cg, "memory");
        if (!dir)
                return 0;
        /* A sandbox being set up holds its init and a few helpers, never 64. */
        n = cgroup_read_procs(dir, pids, ELEMENTSOF(pids));
        if (n < 0)
                return n == -ENOENT ? 0 : n;
        for (int i = 0; i < n; i++) {
                int r = sandbox_write_oom_score_adj(pids[i], adj);

                if (r < 0 && r != -ENOENT && r != -ESRCH)
                        return r;
        }
        return 0;
}

/*
 * Makes the rest of the cgroup (v1 leaves, unless entry is CGROUP_ENTRY_DONE),
 * limits it, and tells the child how to join it: MSG_CGROUP with the v1 tasks fds
 * (none when there is no cgroup or entry is not CGROUP_ENTRY_CHILD: then the
 * parent wrote the child's pid into every leaf, or it is in them) and the app's
 * host ids from spec. The child waits for this message before it runs anything of
 * the app: the limits are in force from the app's first instruction. Into
 * *ret_oom_kills, the memory leaf's OOM kill count before any of the
 * sandbox's tasks can run the app (0 without a memory controller): the baseline
 * sandbox_finish() subtracts (see there). Returns 0 or -errno with err filled.
 */
static int send_cgroup(Cgroup *cg, pid_t pid, CgroupEntry entry, int ctl, const SandboxSpec *spec,
                       uint64_t *ret_oom_kills, SandboxError *err)
{
        CgroupJoin join = {.unified_fd = -EBADF};
        Msg m = {.type = MSG_CGROUP, .host_uid = spec->host_uid, .host_gid = spec->host_gid};
        const CgroupLimits *limits = &spec->limits;
        int r;

        /* Before the child may go on: the app, forked by init, inherits it. */
        if (spec->oom_score_adj_set) {
                r = sandbox_write_oom_score_adj(pid, spec->oom_score_adj);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_CGROUP, r,
                                            "set the sandbox's oom_score_adj to %d",
                                            spec->oom_score_adj);
                /* A warm sandbox's init has children already (a Lua host waiting
                 * for its app), forked with their kernel's value (cellad's -1000):
                 * every process in the leaf gets the app's. */
                r = set_leaf_oom_score_adj(cg, spec->oom_score_adj);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_CGROUP, r,
                                            "set the sandbox's oom_score_adj to %d",
                                            spec->oom_score_adj);
        }
        if (cg) {
                r = entry == CGROUP_ENTRY_DONE ? 0 : cgroup_new_rest(cg);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_CGROUP, r, "create the v1 cgroups");
                CgroupLimits own = *limits;

                own.resources = NULL;
                r = cgroup_set_limits(cg, &own);
                if (r == -ENOENT)
                        /* The one optional-looking file cella insists on (cgroup-v1.c). */
                        return sandbox_fail(err, SANDBOX_STEP_CGROUP, r,
                                            "set cgroup limits: a control file is missing (on "
                                            "cgroup v1, memory.kmem.tcp.limit_in_bytes, which "
                                            "charges the app's socket buffers to its memory "
                                            "limit, needs the kernel's memory accounting)");
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_CGROUP, r, "set cgroup limits");
                if (limits->resources) {
                        const char *knob = NULL;

                        r = cgroup_apply_resources(cg, limits->resources, &knob);
                        if (r < 0)
                                return sandbox_fail(err, SANDBOX_STEP_CGROUP, r,
                                                    "write the cgroup file %s",
                                                    knob ? knob : "(none)");
                }
                /* The baseline now, not once the spawn returns: until MSG_CGROUP the
                 * child is in no v1 leaf and, in the cgroup2 one (CLONE_INTO_CGROUP),
                 * waits for this message before it runs anything of the app; by the
                 * time the spawn returns, the app may have been OOM-killed already
                 * (the kernel counts the kill before its SIGKILL), and a late
                 * baseline would hide that kill. A leaf of the same name left by an
                 * earlier run ("<label>@<owner pid>", cgroup.h; mkdir takes it as it
                 * is) keeps its count: hence a baseline at all. */
                r = cgroup_oom_kills(cg, ret_oom_kills);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_CGROUP, r,
                                            "read the memory cgroup's OOM kill count");
                if (entry == CGROUP_ENTRY_PARENT)
                        r = cgroup_attach(cg, pid);
                else if (entry == CGROUP_ENTRY_CHILD)
                        r = cgroup_join_prepare(cg, &join);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_CGROUP, r, "join the cgroup");
        }
        r = msg_send_fds(ctl, &m, join.v1_fds, join.n_v1);
        cgroup_join_done(&join);
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_INIT, r, "send the cgroup to the child");
        return 0;
}

/*
 * The parent's half once the child exists, the same for a cold spawn and a warm
 * one: the caller's prepare, the cgroup (entry: how the child comes into its
 * leaves, send_cgroup()), the uid map, the caller's starting, the seccomp listener, until
 * STARTED. Takes s, cg, *pidfd, *ctl0 and helper (a net helper to reap, or -1):
 * on success they are in *ret, on failure the child is killed and everything is
 * gone. Returns 0 or -errno with err filled.
 */
static int spawn_finish(SandboxSpec *spec, Sandbox *s_in, Cgroup *cg, pid_t pid, int *pidfd,
                        int *ctl0, pid_t helper, CgroupEntry entry, Sandbox **ret,
                        SandboxError *err)
{
        _cleanup_free_ Sandbox *s = s_in;
        _cleanup_close_ int notify_fd = -EBADF;
        Msg m;
        int r;

        s->pid = pid;
        /* While the child builds its jail: the caller's late work, then the rest
         * of the cgroup, whose v1 leaves the child joins itself (cgroup.h). */
        if (spec->prepare) {
                r = spec->prepare(spec, spec->prepare_userdata);
                if (r < 0) {
                        sandbox_fail(err, SANDBOX_STEP_PREPARE, r, "prepare %s", spec->hostname);
                        goto fail_child;
                }
                if ((spec->host_uid == 0 || spec->host_gid == 0) &&
                    ns_mode(spec, CLONE_NEWUSER, NULL) == NS_NEW) {
                        r = sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                         "the app may not run as host root");
                        goto fail_child;
                }
                r = check_ids_mapped(spec, err);
                if (r < 0)
                        goto fail_child;
        }
        r = send_cgroup(cg, pid, entry, *ctl0, spec, &s->oom_kills_before, err);
        if (r == -EPIPE || r == -ECONNRESET)
                /* The child failed (and exited) before it read this: the report it
                 * queued first, or EOF and its exit status, says why. Read that
                 * rather than report the send. */
                *err = (SandboxError){};
        else if (r < 0)
                goto fail_child;
        for (;;) {
                int fd = -EBADF;

                r = parent_recv(*ctl0, &m, &fd);
                if (r == -EPROTO) {
                        sandbox_fail(err, SANDBOX_STEP_INIT, r, "wrong fds with message %u",
                                     m.type);
                        goto fail_child;
                }
                if (r < 0) {
                        siginfo_t si;

                        if (r == -ETIMEDOUT) {
                                sandbox_fail(err, SANDBOX_STEP_INIT, r,
                                             "no answer from the sandbox");
                                goto fail_child;
                        }
                        kill(pid, SIGKILL);
                        reap(pid, *pidfd, &si);
                        sandbox_fail(err, SANDBOX_STEP_INIT, r,
                                     "sandbox init died during setup (%s %d)",
                                     si.si_code == CLD_EXITED ? "status" : "signal", si.si_status);
                        goto fail_reaped;
                }
                if (m.type == MSG_NEED_IDMAP) {
                        /* A joined user namespace has its maps; none is made without
                         * one (the app keeps host ids). */
                        r = ns_mode(spec, CLONE_NEWUSER, NULL) == NS_NEW
                                    ? userns_write_maps(pid, spec)
                                    : 0;
                        if (r < 0) {
                                sandbox_fail(err, SANDBOX_STEP_USERNS, r, "write uid/gid maps");
                                goto fail_child;
                        }
                        /* Before IDMAP_DONE: the child waits for it, so the app
                         * cannot run before the caller's network setup is done. */
                        if (spec->net_ready) {
                                r = spec->net_ready(spec, *pidfd, spec->prepare_userdata);
                                if (r < 0) {
                                        sandbox_fail(err, SANDBOX_STEP_PREPARE, r,
                                                     "set up the network of %s", spec->hostname);
                                        goto fail_child;
                                }
                        }
                        r = sandbox_msg_send(*ctl0, MSG_IDMAP_DONE, 0);
                        if (r < 0)
                                continue; /* the child died: the next recv says how */
                        /* The child needs nothing more from us until STARTED, and the
                         * net helper is done: the caller's work overlaps its last
                         * steps (its reports wait in the socket meanwhile). */
                        if (spec->starting) {
                                spec->starting_pid = pid;
                                r = spec->starting(spec, spec->prepare_userdata);
                                if (r < 0) {
                                        sandbox_fail(err, SANDBOX_STEP_PREPARE, r,
                                                     "prepare %s while it starts", spec->hostname);
                                        goto fail_child;
                                }
                                if (spec->wait_starting) {
                                        r = sandbox_msg_send(*ctl0, MSG_GO, 0);
                                        if (r < 0)
                                                continue; /* died: the next recv says how */
                                }
                        }
                } else if (m.type == MSG_WARM_READY) {
                        continue; /* a warm child's, sent before it saw the app */
                } else if (m.type == MSG_ERROR) {
                        err->step = m.step > 0 && m.step < _SANDBOX_STEP_MAX ? (SandboxStep)m.step
                                                                             : SANDBOX_STEP_INIT;
                        err->error = m.error > 0 ? m.error : EIO;
                        memcpy(err->detail, m.detail, sizeof err->detail);
                        err->exec_cause = err->step == SANDBOX_STEP_EXEC && m.value > 0 &&
                                                          m.value < _SANDBOX_EXEC_CAUSE_MAX
                                                  ? (SandboxExecCause)m.value
                                                  : SANDBOX_EXEC_CAUSE_NONE;
                        r = -err->error;
                        goto fail_child;
                } else if (m.type == MSG_SECCOMP_FD && spec->seccomp->notify && notify_fd < 0) {
                        notify_fd = fd;
                } else if (m.type == MSG_STARTED && spec->seccomp->notify == (notify_fd >= 0)) {
                        s->app_pid = m.value;
                        break;
                } else {
                        safe_close(fd);
                        r = sandbox_fail(err, SANDBOX_STEP_INIT, -EPROTO, "unexpected message %u",
                                         m.type);
                        goto fail_child;
                }
        }
        reap_helper(helper);
        /* sandbox_process() reads without blocking (the child's end stays blocking). */
        (void)fcntl(*ctl0, F_SETFL, O_NONBLOCK);
        s->pidfd = TAKE_FD(*pidfd);
        s->ctl_fd = TAKE_FD(*ctl0);
        s->seccomp_notify_fd = notify_fd >= 0 ? TAKE_FD(notify_fd) : -1;
        s->cgroup = cg;
        *ret = TAKE_PTR(s);
        return 0;

fail_child:
        kill(pid, SIGKILL);
        reap(pid, *pidfd, NULL);
fail_reaped:
        if (helper > 0)
                kill(helper, SIGKILL);
        reap_helper(helper);
        if (cg) {
                cgroup_kill(cg);
                cgroup_destroy(cg);
        }
        return r < 0 ? r : -EIO;
}

int sandbox_spawn(const SandboxSpec *spec_in, Sandbox **ret, SandboxError *err)
{
        _cleanup_close_pair_ int ctl[2] = {-EBADF, -EBADF};
        _cleanup_close_ int pidfd = -EBADF;
        _cleanup_free_ Sandbox *s = NULL;
        SandboxSpec spec = *spec_in;
        Cgroup *cg = NULL;
        _cleanup_close_ int unified_fd = -EBADF;
        CgroupEntry entry = CGROUP_ENTRY_CHILD;
        struct clone_args args = {};
        pid_t pid, helper = -1;
        int r;

        *err = (SandboxError){};
        if (spec.tmp_size == 0)
                spec.tmp_size = SANDBOX_DEFAULT_TMP_SIZE;
        r = check_spec(&spec, err);
        if (r < 0)
                return r;
        s = calloc(1, sizeof *s);
        if (!s)
                return sandbox_fail(err, SANDBOX_STEP_PREPARE, -ENOMEM, "allocate");

        /* Before the clone only the cgroup2 leaf, which clone3 joins the child to;
         * the rest is made while the child builds its jail (below). */
        if (spec.cgroups) {
                const char *unified;

                r = cgroup_new_unified(spec.cgroups, spec.cgroup_label, &cg);
                if (r < 0)
                        return sandbox_fail(err, SANDBOX_STEP_CGROUP, r, "create cgroup %s",
                                            spec.cgroup_label);
                unified = cgroup_path(cg, "");
                if (unified) {
                        unified_fd = open(unified, O_PATH | O_DIRECTORY | O_CLOEXEC);
                        if (unified_fd < 0) {
                                r = sandbox_fail(err, SANDBOX_STEP_CGROUP, negative_errno(),
                                                 "open %s", unified);
                                goto fail;
                        }
                }
        }
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_CLONE, negative_errno(), "socketpair");
                goto fail;
        }

        /* The mount and pid namespaces are always new (check_oci()); ipc and uts as
         * the spec says (a joined one is entered by the child: child_join_early()). */
        args.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_PIDFD;
        if (ns_mode(&spec, CLONE_NEWIPC, NULL) == NS_NEW)
                args.flags |= CLONE_NEWIPC;
        if (ns_mode(&spec, CLONE_NEWUTS, NULL) == NS_NEW)
                args.flags |= CLONE_NEWUTS;
        args.pidfd = (uint64_t)(uintptr_t)&pidfd;
        args.exit_signal = SIGCHLD;
        if (unified_fd >= 0) {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = (uint64_t)unified_fd;
        }
        pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        if (pid < 0 && unified_fd >= 0 &&
            (errno == EINVAL || errno == E2BIG || errno == EOPNOTSUPP)) {
                /* Linux < 5.7 has no CLONE_INTO_CGROUP: join the old way. */
                args.flags &= ~(uint64_t)CLONE_INTO_CGROUP;
                args.cgroup = 0;
                entry = CGROUP_ENTRY_PARENT;
                pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        }
        if (pid < 0) {
                r = sandbox_fail(err, SANDBOX_STEP_CLONE, negative_errno(), "clone3");
                goto fail;
        }
        if (pid == 0) {
                safe_close(ctl[0]);
                child_main(&spec, ctl[1]);
        }
        unified_fd = safe_close(unified_fd);
        ctl[1] = safe_close(ctl[1]);

        /* A network namespace shared or joined: no helper, nothing to make. */
        if (ns_mode(&spec, CLONE_NEWNET, NULL) != NS_NEW)
                return spawn_finish(&spec, TAKE_PTR(s), cg, pid, &pidfd, &ctl[0], -1, entry, ret,
                                    err);
        helper = fork();
        if (helper < 0) {
                siginfo_t si;

                r = sandbox_fail(err, SANDBOX_STEP_NAMESPACE, negative_errno(),
                                 "fork the network helper");
                kill(pid, SIGKILL);
                reap(pid, pidfd, &si);
                goto fail;
        }
        if (helper == 0)
                net_helper(ctl[0]);
        return spawn_finish(&spec, TAKE_PTR(s), cg, pid, &pidfd, &ctl[0], helper, entry, ret, err);

fail:
        if (cg) {
                cgroup_kill(cg);
                cgroup_destroy(cg);
        }
        return r < 0 ? r : -EIO;
}

/* ---- warm sandboxes ------------------------------------------------------ */

/*
 * A warm sandbox (docs/design.md section 10, "A start through cellad"; docs/daemon.md,
 * "The warm pool"): a child cloned ahead, as Android's zygote keeps a warm
 * process, with everything of a spawn that belongs to no app done: the mount,
 * pid, ipc and uts namespaces (clone3), its own network namespace with loopback
 * up (the net helper), a session of its own, and the jail's skeleton
 * (jail_skeleton(): the root tmpfs, the runtime's read-only binds, /dev, /proc).
 * It then waits on ctl, root of the caller's user namespace, in a cgroup leaf of
 * its own ("warm-<caller pid>-<n>@<owner>", unlimited until it has an app), holding
 * no fd but ctl and cella-init's, no uid of any app, and no app's data: it is a
 * copy of the memory of the process that cloned it (the caller, or the caller's
 * zygote, below), as every cold spawn's child is of the caller.
 *
 * Its leaf is made and joined ahead, as its namespaces are, because a start must
 * not move it into one: writing a pid to cgroup.procs takes Linux's global
 * cgroup_threadgroup_rwsem for writing, whose percpu_down_write() waits for an
 * RCU grace period (7-15 ms measured on this project's hosts, docs/benchmarks.md)
 * unless another writer holds it already. So the child is born in the cgroup2 leaf
 * (clone3(CLONE_INTO_CGROUP)) and writes "0" to each v1 leaf's "tasks" itself (a
 * single thread moving itself skips that lock: cgroup_procs_write_start()), as a
 * cold child does; at the start the parent only writes the app's limits into the
 * leaf, before the child may go on, and renames it after the app where every
 * hierarchy allows (v1: cgroup_rename(); cgroup2 refuses a rename, so on v2 and
 * hybrid hosts the leaf keeps its warm name, recorded in the Sandbox's Cgroup and,
 * through it, in the keeper's record).
 *
 * sandbox_spawn_warm() gives it one app: the spec, deep-copied into a shared
 * arena mapped before the clone (so its pointers mean the same in both
 * processes), and MSG_WARM_GO with the spec's fds; the child then does what a
 * cold child does from the hostname on (the app's binds, /etc identity, /tmp,
 * pivot_root, the cgroup's limits, the user namespace and the app's uid map,
 * capabilities, rlimits, seccomp, exec), through the same child_run(). What is
 * never done ahead, and why: the user namespace and the uid (each app has its own
 * host uid; a namespace made ahead would be charged to the wrong uid,
 * become_host_user()), the cgroup's limits (the app's), the hostname, /tmp (its
 * size is the app's), every bind of the app's own.
 *
 * One warm sandbox serves one app, once: used or not, it is never handed to
 * another. While it waits it carries PR_SET_PDEATHSIG(SIGKILL) (a SIGKILL of the
 * caller ends it) and exits on ctl's EOF (sandbox_warm_free(), or the caller's
 * death).
 */
struct SandboxWarm {
        pid_t pid;
        int pidfd;
        int ctl; /* the parent's end */
        pid_t helper;
        void *arena; /* SANDBOX_WARM_ARENA bytes, MAP_SHARED with the child */
        bool ready;  /* MSG_WARM_READY came */
        char *init_path;
        CgroupManager *cgm; /* not owned; NULL: no cgroup */
        Cgroup *cg;         /* the child's leaf (made by sandbox_warm_new()) */
};

/* Tries at naming a warm leaf before giving up (a name taken is -EEXIST: the next
 * number is tried). */
#define SANDBOX_WARM_LEAF_TRIES 16

#define SANDBOX_WARM_ARENA (256u * 1024u)

/* The bump allocator that flattens a spec into the arena. */
typedef struct Arena {
        char *base;
        size_t used, size;
} Arena;

static void *arena_alloc(Arena *a, size_t n)
{
        size_t at = (a->used + 15) & ~(size_t)15;

        if (at > a->size || n > a->size - at)
                return NULL;
        a->used = at + n;
        return a->base + at;
}

static char *arena_str(Arena *a, const char *str, bool *ok)
{
        char *p;
        size_t n;

        if (!str)
                return NULL;
        n = strlen(str) + 1;
        p = arena_alloc(a, n);
        if (!p) {
                *ok = false;
                return NULL;
        }
        memcpy(p, str, n);
        return p;
}

static char **arena_strv(Arena *a, char *const *v, bool *ok)
{
        size_t n = 0;
        char **p;

        if (!v)
                return NULL;
        while (v[n])
                n++;
        p = arena_alloc(a, (n + 1) * sizeof *p);
        if (!p) {
                *ok = false;
                return NULL;
        }
        for (size_t i = 0; i < n; i++)
                p[i] = arena_str(a, v[i], ok);
        p[n] = NULL;
        return p;
}

/* How many fds a warm start passes for spec: stdio, channel, pty socket, binds. */
static size_t warm_n_fds(const SandboxSpec *spec)
{
        size_t n = 0;

        for (int i = 0; i < 3; i++)
                n += spec->stdio[i] >= 0;
        n += spec->channel_fd >= 0;
        n += spec->pty_socket > 0;
        for (size_t i = 0; i < spec->n_binds; i++)
                n += !!(spec->binds[i].flags & SANDBOX_BIND_FD);
        return n;
}

/*
 * Copies spec into a (its strings, vectors, binds and seccomp program), with the
 * fds it names collected into fds (*n_fds of them, in warm_n_fds()'s order) and
 * every function pointer and the cgroup manager left out (the parent's alone).
 * Returns the copy, or NULL if it does not fit.
 */
static SandboxSpec *warm_flatten(Arena *a, const SandboxSpec *spec, int *fds, unsigned *n_fds)
{
        SandboxSpec *c = arena_alloc(a, sizeof *c);
        SeccompProgram *sp;
        SandboxBind *b = NULL;
        bool ok = true;
        unsigned n = 0;

        if (!c)
                return NULL;
        *c = *spec;
        c->prepare = NULL;
        c->starting = NULL;
        c->net_ready = NULL;
        c->prepare_userdata = NULL;
        c->cgroups = NULL;
        c->cgroup_label = NULL;
        c->extra_fds = NULL;
        c->hostname = arena_str(a, spec->hostname, &ok);
        c->resolv_conf = arena_str(a, spec->resolv_conf, &ok);
        c->workdir = arena_str(a, spec->workdir, &ok);
        c->exec_path = arena_str(a, spec->exec_path, &ok);
        c->init_path = arena_str(a, spec->init_path, &ok);
        c->entry_scripts = arena_strv(a, spec->entry_scripts, &ok);
        c->argv = arena_strv(a, spec->argv, &ok);
        c->envp = arena_strv(a, spec->envp, &ok);
        for (int i = 0; i < 3; i++)
                if (spec->stdio[i] >= 0)
                        fds[n++] = spec->stdio[i];
        if (spec->channel_fd >= 0)
                fds[n++] = spec->channel_fd;
        if (spec->pty_socket > 0)
                fds[n++] = spec->pty_socket;
        if (spec->n_binds > 0) {
                b = arena_alloc(a, spec->n_binds * sizeof *b);
                if (!b)
                        return NULL;
                for (size_t i = 0; i < spec->n_binds; i++) {
                        b[i] = spec->binds[i];
                        b[i].source = arena_str(a, spec->binds[i].source, &ok);
                        b[i].target = arena_str(a, spec->binds[i].target, &ok);
                        if (b[i].flags & SANDBOX_BIND_FD)
                                fds[n++] = spec->binds[i].fd;
                }
        }
        c->binds = b;
        sp = arena_alloc(a, sizeof *sp);
        if (!sp)
                return NULL;
        *sp = *spec->seccomp;
        sp->prog.filter = arena_alloc(a, sizeof(struct sock_filter) * spec->seccomp->prog.len);
        if (!sp->prog.filter)
                return NULL;
        memcpy(sp->prog.filter, spec->seccomp->prog.filter,
               sizeof(struct sock_filter) * spec->seccomp->prog.len);
        c->seccomp = sp;
        *n_fds = n;
        return ok ? c : NULL;
}

/* In the warm child: the fds that came with MSG_WARM_GO take the places of the
 * ones the copied spec names, in warm_n_fds()'s order. */
static void warm_place_fds(SandboxSpec *c, const int *fds)
{
        unsigned n = 0;

        for (int i = 0; i < 3; i++)
                if (c->stdio[i] >= 0)
                        c->stdio[i] = fds[n++];
        if (c->channel_fd >= 0)
                c->channel_fd = fds[n++];
        if (c->pty_socket > 0)
                c->pty_socket = fds[n++];
        for (size_t i = 0; i < c->n_binds; i++)
                if (c->binds[i].flags & SANDBOX_BIND_FD)
                        ((SandboxBind *)c->binds)[i].fd = fds[n++];
}

/* The warm child: see struct SandboxWarm. Never returns. */
_noreturn_ static void warm_main(int ctl, const char *init_path, void *arena, CgroupJoin *join)
{
        SandboxError err = {};
        JailSkeleton sk;
        SandboxSpec *spec;
        int init_fd, init_errno, r;
        int fds[MSG_MAX_FDS];
        unsigned n = 0;
        bool have_net = false, have_go = false;
        Msg m = {}, go = {};

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(1);
        /* Into the v1 leaves, as a single thread moving itself (it was born in the
         * cgroup2 one); cgroup_join_self() closes their fds. */
        r = cgroup_join_self(join);
        /* Nothing of the caller's crosses into a warm sandbox: not another app's
         * pipes or channel, not the control socket. */
        close_all_but(ctl, -1);
        if (r < 0) {
                sandbox_fail(&err, SANDBOX_STEP_CGROUP, r, "join the warm v1 cgroups");
                goto fail;
        }
        {
                /* The parent may have died before the signal was armed. */
                struct pollfd p = {.fd = ctl, .events = POLLOUT};

                if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLERR)))
                        _exit(1);
        }
        open_init(init_path, &init_fd, &init_errno);
        if (setsid() < 0) {
                r = sandbox_fail(&err, SANDBOX_STEP_NAMESPACE, negative_errno(), "setsid");
                goto fail;
        }
        /* The net helper's namespace, unless the app comes first (a take right
         * after the clone: the parent's MSG_WARM_GO, and its MSG_CGROUP after it,
         * may overtake the helper's message); child_join() then takes the two in
         * whichever order, as a cold child does. */
        while (!have_net && !have_go) {
                int got[MSG_MAX_FDS];
                unsigned k = 0;

                r = msg_recv_fds(ctl, &m, got, &k);
                if (r == -EPIPE)
                        _exit(0);
                if (r >= 0 && m.type == MSG_NETNS && !m.error && k == 1) {
                        if (setns(got[0], CLONE_NEWNET) < 0) {
                                r = sandbox_fail(&err, SANDBOX_STEP_NAMESPACE, negative_errno(),
                                                 "join the network namespace");
                                goto fail;
                        }
                        safe_close(got[0]);
                        have_net = true;
                } else if (r >= 0 && m.type == MSG_WARM_GO && !have_go) {
                        go = m;
                        memcpy(fds, got, sizeof(int) * k);
                        n = k;
                        have_go = true;
                } else {
                        for (unsigned i = 0; i < k; i++)
                                safe_close(got[i]);
                        r = sandbox_fail(&err, SANDBOX_STEP_NAMESPACE,
                                         r < 0                 ? r
                                         : m.type != MSG_NETNS ? -EPROTO
                                         : m.error             ? -m.error
                                                               : -EBADMSG,
                                         "%s",
                                         m.type == MSG_NETNS && m.detail[0]
                                                 ? m.detail
                                                 : "no network namespace fd");
                        goto fail;
                }
        }
        r = jail_skeleton(SANDBOX_WARM_MAX_BINDS, &sk, &err);
        if (r < 0)
                goto fail;

        /* Warm: say so, then wait for an app, or for ctl's end (then simply go). */
        if (!have_go) {
                if (sandbox_msg_send(ctl, MSG_WARM_READY, 0) < 0)
                        _exit(0);
                r = msg_recv_fds(ctl, &go, fds, &n);
                if (r == -EPIPE)
                        _exit(0);
                if (r < 0 || go.type != MSG_WARM_GO) {
                        r = sandbox_fail(&err, SANDBOX_STEP_PREPARE, r < 0 ? r : -EPROTO,
                                         "warm sandbox: expected an app");
                        goto fail;
                }
        }
        spec = arena;
        if ((size_t)go.value != warm_n_fds(spec) || n != (unsigned)go.value) {
                r = sandbox_fail(&err, SANDBOX_STEP_PREPARE, -EBADMSG,
                                 "warm sandbox: %u fds for %d", n, go.value);
                goto fail;
        }
        warm_place_fds(spec, fds);
        /* An app that outlives its kernel (survive_parent) ends with ctl's hangup
         * alone; the credential changes below clear the signal anyway. */
        if (spec->survive_parent && prctl(PR_SET_PDEATHSIG, 0) < 0)
                _exit(1);
        if (sethostname(spec->hostname, strnlen(spec->hostname, SANDBOX_HOSTNAME_MAX)) < 0) {
                r = sandbox_fail(&err, SANDBOX_STEP_NAMESPACE, negative_errno(), "sethostname");
                goto fail;
        }
        r = jail_finish(spec, &sk, &err);
        if (r < 0)
                goto fail;
        child_run(spec, ctl, init_fd, init_errno, have_net, NULL);
fail:
        msg_send_error(ctl, &err);
        _exit(1);
}

/* Makes w's leaf (see struct SandboxWarm) and opens what the child needs to be
 * born in it into *join. Returns 0 or -errno. */
static int warm_cgroup(SandboxWarm *w, CgroupJoin *join)
{
        static uint64_t seq;
        int r = -EEXIST;

        /* Numbered on from the boot's monotonic clock in microseconds at this
         * image's first leaf, not from 1: on hybrid and v2 hosts a started app
         * keeps its warm leaf's name, and a SIGHUP re-exec (or a later cellad given
         * the same pid) would otherwise take every name an earlier image gave its
         * apps, each refused (EEXIST) and its pool left empty. An earlier image
         * numbered from an earlier microsecond, once per leaf (each takes far
         * longer than 1 us), so it never reached this one's first number. */
        if (seq == 0) {
                struct timespec ts;

                (void)clock_gettime(CLOCK_MONOTONIC, &ts);
                seq = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
        }
        for (unsigned i = 0; i < SANDBOX_WARM_LEAF_TRIES && r == -EEXIST; i++) {
                char label[48];

                snprintf(label, sizeof label, "warm-%d-%" PRIu64, (int)getpid(), ++seq);
                r = cgroup_new_exclusive(w->cgm, label, &w->cg);
        }
        if (r < 0)
                return r;
        return cgroup_join_prepare(w->cg, join);
}

/*
 * clone3() of a warm child (flags_extra: CLONE_PARENT from the zygote), into
 * join's cgroup2 leaf where there is one; the child runs warm_main() and never
 * returns. *ret_attach: the kernel has no CLONE_INTO_CGROUP (Linux < 5.7) and the
 * caller must write the child into its leaf. Returns the child's pid with
 * *ret_pidfd, or -errno.
 */
static pid_t warm_clone(uint64_t flags_extra, int ctl, const char *init_path, void *arena,
                        CgroupJoin *join, int *ret_pidfd, bool *ret_attach)
{
        struct clone_args args = {};
        pid_t pid;

        *ret_attach = false;
        args.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD |
                     flags_extra;
        args.pidfd = (uint64_t)(uintptr_t)ret_pidfd;
        /* With CLONE_PARENT the kernel takes the caller's own exit signal instead. */
        args.exit_signal = (flags_extra & CLONE_PARENT) ? 0 : SIGCHLD;
        if (join->unified_fd >= 0) {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = (uint64_t)join->unified_fd;
        }
        pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        if (pid < 0 && join->unified_fd >= 0 &&
            (errno == EINVAL || errno == E2BIG || errno == EOPNOTSUPP)) {
                /* Linux < 5.7: the caller writes it in, ahead of any start. */
                args.flags &= ~(uint64_t)CLONE_INTO_CGROUP;
                args.cgroup = 0;
                *ret_attach = true;
                pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        }
        if (pid < 0)
                return negative_errno();
        if (pid == 0)
                warm_main(ctl, init_path, arena, join);
        return pid;
}

/* ---- the zygote ----------------------------------------------------------- */

/*
 * A small process that clones warm sandboxes for its parent (docs/daemon.md, "The
 * warm pool", "What it costs"): a fork of the caller made early, while the caller
 * is small (cellad: before it has loaded any app), which then only waits for
 * requests. A warm sandbox cloned by the caller itself is a copy of the caller as
 * it is then, and each page the caller writes afterwards becomes the sandbox's own:
 * beside a cellad of 1,000 apps two warm sandboxes held 26 MiB Pss. Cloned from
 * the zygote, which writes almost nothing, a warm sandbox shares its pages with
 * the zygote, whatever the caller grows to.
 *
 * The zygote clones with CLONE_PARENT, so each warm sandbox is the caller's child
 * as before (its pidfd waited on, its parent-death signal the caller's thread's),
 * into the caller's leaves (the fds of cgroup_join_prepare()), sharing the
 * caller's arena: a memfd the zygote maps at the caller's address
 * (MAP_FIXED_NOREPLACE), so the spec's pointers mean the same in the child. A
 * request that cannot be served that way (the address taken in the zygote, the
 * zygote gone) is cloned by the caller itself, as without a zygote.
 */
struct SandboxZygote {
        pid_t pid;
        int pidfd;
        int fd; /* SOCK_SEQPACKET to the zygote; -EBADF once it is gone */
};

typedef struct ZygoteRequest {
        uint64_t arena; /* the caller's address of the arena */
        uint32_t n_v1;  /* v1 tasks fds that follow */
        uint32_t unified;
        char init_path[PATH_MAX]; /* "" for none */
} ZygoteRequest;

typedef struct ZygoteReply {
        int32_t pid;   /* > 0, with its pidfd attached */
        int32_t error; /* errno, when pid <= 0 */
        uint32_t attach;
        int32_t helper; /* the net helper's pid (the caller's child too), or -1 */
} ZygoteReply;

/* The zygote: serves ZygoteRequests on fd (fds: the child's ctl end, the arena
 * memfd, the parent's ctl end for the net helper, the cgroup2 leaf, the v1 tasks)
 * until EOF: clones the warm child, then forks its net helper, both with
 * CLONE_PARENT. Never returns. */
_noreturn_ static void zygote_main(int fd, pid_t parent)
{
        sigset_t none;

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(0);
        close_all_but(fd, -1);
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        (void)signal(SIGTERM, SIG_DFL);
        (void)signal(SIGINT, SIG_DFL);
        (void)signal(SIGHUP, SIG_DFL);
        (void)prctl(PR_SET_NAME, "cella-zygote", 0, 0, 0);
        for (;;) {
                ZygoteRequest q;
                ZygoteReply rp = {.pid = -1, .helper = -1};
                int fds[FD_MSG_MAX_FDS], pidfd = -EBADF;
                size_t n = 0;
                ssize_t k = fd_msg_recv(fd, &q, sizeof q, fds, ELEMENTSOF(fds), &n, 0);

                if (k == -EINTR)
                        continue;
                if (k <= 0)
                        _exit(0);
                if (k != sizeof q || q.n_v1 > CGROUP_JOIN_MAX_V1 || q.unified > 1 ||
                    n != 3 + q.unified + q.n_v1)
                        rp.error = EBADMSG;
                else {
                        void *a = mmap((void *)(uintptr_t)q.arena, SANDBOX_WARM_ARENA,
                                       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
                                       fds[1], 0);

                        if (a == MAP_FAILED)
                                rp.error = errno;
                        else if (a != (void *)(uintptr_t)q.arena) {
                                /* A kernel before 4.17 takes the flag as a hint. */
                                munmap(a, SANDBOX_WARM_ARENA);
                                rp.error = EEXIST;
                        } else {
                                CgroupJoin j = {.unified_fd = q.unified ? fds[3] : -EBADF,
                                                .n_v1 = q.n_v1};
                                bool attach;
                                pid_t pid;

                                memcpy(j.v1_fds, fds + 3 + q.unified, sizeof(int) * q.n_v1);
                                q.init_path[sizeof q.init_path - 1] = 0;
                                pid = warm_clone(CLONE_PARENT, fds[0],
                                                 q.init_path[0] ? q.init_path : NULL, a, &j, &pidfd,
                                                 &attach);
                                if (pid < 0)
                                        rp.error = -pid;
                                else {
                                        struct clone_args h = {.flags = CLONE_PARENT};
                                        pid_t helper;

                                        rp.pid = pid;
                                        rp.attach = attach;
                                        /* The net helper, also a copy of this small
                                         * process rather than of the caller. */
                                        helper = (pid_t)syscall(SYS_clone3, &h, sizeof h);
                                        if (helper == 0)
                                                net_helper(fds[2]);
                                        rp.helper = helper > 0 ? helper : -1;
                                }
                                munmap(a, SANDBOX_WARM_ARENA);
                        }
                }
                for (size_t i = 0; i < n; i++)
                        safe_close(fds[i]);
                if (fd_msg_send(fd, &rp, sizeof rp, &pidfd, pidfd >= 0 ? 1 : 0, 0) < 0)
                        _exit(0);
                safe_close(pidfd);
        }
}

int sandbox_zygote_new(SandboxZygote **ret)
{
        _cleanup_close_pair_ int sk[2] = {-EBADF, -EBADF};
        struct clone_args args = {.flags = CLONE_PIDFD, .exit_signal = SIGCHLD};
        SandboxZygote *z;
        int pidfd = -EBADF;
        pid_t parent = getpid(), pid;

        z = calloc(1, sizeof *z);
        if (!z)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sk) < 0) {
                free(z);
                return negative_errno();
        }
        args.pidfd = (uint64_t)(uintptr_t)&pidfd;
        pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        if (pid < 0) {
                free(z);
                return negative_errno();
        }
        if (pid == 0)
                zygote_main(sk[1], parent);
        z->pid = pid;
        z->pidfd = pidfd;
        z->fd = TAKE_FD(sk[0]);
        *ret = z;
        return 0;
}

SandboxZygote *sandbox_zygote_free(SandboxZygote *z)
{
        if (!z)
                return NULL;
        z->fd = safe_close(z->fd); /* its EOF: the zygote exits */
        if (z->pidfd >= 0) {
                syscall(SYS_pidfd_send_signal, z->pidfd, SIGKILL, NULL, 0);
                reap(z->pid, z->pidfd, NULL);
        }
        safe_close(z->pidfd);
        free(z);
        return NULL;
}

pid_t sandbox_zygote_pid(const SandboxZygote *z)
{
        return z && z->fd >= 0 ? z->pid : -1;
}

/* Has z clone a warm child (see struct SandboxZygote) and fork its net helper on
 * ctl_parent. Returns its pid with *ret_pidfd, *ret_attach and *ret_helper (-1:
 * none, the caller forks one), or -errno: then the caller clones it itself. */
static pid_t zygote_clone(SandboxZygote *z, int ctl, int ctl_parent, const char *init_path,
                          void *arena, int arena_fd, CgroupJoin *join, int *ret_pidfd,
                          bool *ret_attach, pid_t *ret_helper)
{
        ZygoteRequest q = {.arena = (uint64_t)(uintptr_t)arena,
                           .n_v1 = join->n_v1,
                           .unified = join->unified_fd >= 0};
        ZygoteReply rp;
        int fds[FD_MSG_MAX_FDS], got[FD_MSG_MAX_FDS];
        unsigned n = 0;
        size_t k_fds = 0;
        struct pollfd p = {.fd = z->fd, .events = POLLIN};
        ssize_t k;

        if (z->fd < 0)
                return -ECHILD;
        if (init_path && strlen(init_path) >= sizeof q.init_path)
                return -ENAMETOOLONG;
        if (init_path)
                strcpy(q.init_path, init_path);
        fds[n++] = ctl;
        fds[n++] = arena_fd;
        fds[n++] = ctl_parent;
        if (join->unified_fd >= 0)
                fds[n++] = join->unified_fd;
        for (unsigned i = 0; i < join->n_v1; i++)
                fds[n++] = join->v1_fds[i];
        k = fd_msg_send(z->fd, &q, sizeof q, fds, n, MSG_NOSIGNAL);
        if (k >= 0 && RETRY_EINTR(poll(&p, 1, SANDBOX_ZYGOTE_TIMEOUT_MS)) == 1)
                k = fd_msg_recv(z->fd, &rp, sizeof rp, got, ELEMENTSOF(got), &k_fds, 0);
        else if (k >= 0)
                k = -ETIMEDOUT;
        if (k != (ssize_t)sizeof rp || (rp.pid > 0) != (k_fds == 1)) {
                /* Gone, hung or broken: no more requests to it. */
                for (size_t i = 0; k > 0 && i < k_fds; i++)
                        safe_close(got[i]);
                z->fd = safe_close(z->fd);
                return k < 0 ? (int)k : -EBADMSG;
        }
        if (rp.pid <= 0)
                return rp.error > 0 ? -rp.error : -EIO;
        *ret_pidfd = got[0];
        *ret_attach = rp.attach;
        *ret_helper = rp.helper;
        return rp.pid;
}

int sandbox_warm_new(const char *init_path, CgroupManager *cgroups, SandboxZygote *zygote,
                     SandboxWarm **ret)
{
        _cleanup_close_pair_ int ctl[2] = {-EBADF, -EBADF};
        _cleanup_close_ int pidfd = -EBADF;
        _cleanup_free_ SandboxWarm *w = NULL;
        _cleanup_close_ int arena_fd = -EBADF;
        CgroupJoin join = {.unified_fd = -EBADF};
        bool attach = false;
        void *arena;
        pid_t pid = -1, helper = -1;
        int r;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->pidfd = w->ctl = -EBADF;
        w->cgm = cgroups;
        if (init_path) {
                w->init_path = strdup(init_path);
                if (!w->init_path)
                        return -ENOMEM;
        }
        /* A memfd, which the zygote maps too; shared anonymous memory otherwise. */
        if (zygote && zygote->fd >= 0) {
                arena_fd = memfd_create("cella-warm-arena", MFD_CLOEXEC);
                if (arena_fd >= 0 && ftruncate(arena_fd, SANDBOX_WARM_ARENA) < 0)
                        arena_fd = safe_close(arena_fd);
        }
        arena = mmap(NULL, SANDBOX_WARM_ARENA, PROT_READ | PROT_WRITE,
                     arena_fd >= 0 ? MAP_SHARED : MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                     arena_fd, 0);
        if (arena == MAP_FAILED) {
                free(w->init_path);
                return negative_errno();
        }
        if (cgroups) {
                r = warm_cgroup(w, &join);
                if (r < 0)
                        goto fail;
        }
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
                goto fail_errno;
        if (arena_fd >= 0)
                pid = zygote_clone(zygote, ctl[1], ctl[0], w->init_path, arena, arena_fd, &join,
                                   &pidfd, &attach, &helper);
        if (pid == -ETIMEDOUT) {
                /* A zygote that hangs (stopped, or stalled cloning into a leaf of a
                 * budget at its limit) is given up; this sandbox is not cloned from
                 * here either, where the same stall would hold the caller's loop with
                 * no bound. The next one is (no zygote any more). */
                r = -ETIMEDOUT;
                goto fail;
        }
        if (pid < 0) {
                /* No zygote, or it could not: cloned from here (a copy of the caller). */
                pid = warm_clone(0, ctl[1], w->init_path, arena, &join, &pidfd, &attach);
                if (pid < 0) {
                        r = (int)pid;
                        goto fail;
                }
        }
        cgroup_join_done(&join);
        if (attach)
                (void)cgroup_attach(w->cg, pid); /* if it fails, so does the child's join */
        /* Only this child shares the arena: neither the next warm child nor any
         * cold one inherits it (each would see the spec of another app). */
        (void)madvise(arena, SANDBOX_WARM_ARENA, MADV_DONTFORK);
        ctl[1] = safe_close(ctl[1]);
        w->pid = pid;
        w->pidfd = TAKE_FD(pidfd);
        w->ctl = TAKE_FD(ctl[0]);
        w->arena = arena;
        w->helper = helper > 0 ? helper : fork();
        if (w->helper < 0) {
                r = negative_errno();
                w->helper = -1;
                sandbox_warm_free(TAKE_PTR(w));
                return r;
        }
        if (w->helper == 0)
                net_helper(w->ctl);
        *ret = TAKE_PTR(w);
        return 0;

fail_errno:
        r = negative_errno();
fail:
        cgroup_join_done(&join);
        if (w->cg)
                cgroup_destroy(w->cg);
        munmap(arena, SANDBOX_WARM_ARENA);
        free(w->init_path);
        return r;
}

pid_t sandbox_warm_pid(const SandboxWarm *w)
{
        return w ? w->pid : -1;
}

bool sandbox_warm_fits(const SandboxWarm *w, const SandboxSpec *spec)
{
        /* An OCI jail's namespaces, ids and fds are not a warm sandbox's (nor copied by
         * warm_flatten()); an OCI root is built in the sandbox's namespaces, nothing of
         * it ahead. */
        if (!w || !spec || spec->rootfs || spec->n_extra_fds > 0 ||
            spec->n_binds > SANDBOX_WARM_MAX_BINDS || warm_n_fds(spec) > SANDBOX_WARM_MAX_FDS ||
            spec_is_oci(spec))
                return false;
        if (!w->init_path != !spec->init_path ||
            (w->init_path && strcmp(w->init_path, spec->init_path) != 0))
                return false;
        /* Its leaf is the manager's, and there is one (made, or not) for a spec
         * that wants one. */
        if (w->cgm != spec->cgroups || !w->cg != !spec->cgroups)
                return false;
        return true;
}

int sandbox_warm_check(SandboxWarm *w)
{
        struct pollfd p = {.fd = w->pidfd, .events = POLLIN};
        Msg m;

        /* A warm child says one thing before it has an app, MSG_WARM_READY; any
         * other message is its failure report, EOF its end, and a readable pidfd
         * its exit. */
        while (!w->ready) {
                ssize_t k = recv(w->ctl, &m, sizeof m, MSG_DONTWAIT);

                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                if (k != (ssize_t)sizeof m || m.type != MSG_WARM_READY)
                        return -ECHILD;
                w->ready = true;
        }
        if (poll(&p, 1, 0) != 0)
                return -ECHILD;
        return w->ready ? 1 : 0;
}

SandboxWarm *sandbox_warm_free(SandboxWarm *w)
{
        if (!w)
                return NULL;
        if (w->pidfd >= 0) {
                syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
                reap(w->pid, w->pidfd, NULL);
        }
        if (w->helper > 0) {
                kill(w->helper, SIGKILL);
                reap_helper(w->helper);
        }
        safe_close(w->pidfd);
        safe_close(w->ctl);
        /* Reaped: its leaf is empty, and goes. */
        cgroup_destroy(w->cg);
        if (w->arena)
                munmap(w->arena, SANDBOX_WARM_ARENA);
        free(w->init_path);
        free(w);
        return NULL;
}

int sandbox_spawn_warm(SandboxWarm *w, const SandboxSpec *spec_in, Sandbox **ret, SandboxError *err)
{
        _cleanup_free_ Sandbox *s = NULL;
        SandboxSpec spec = *spec_in, *copy;
        Arena a = {.base = w->arena, .size = SANDBOX_WARM_ARENA};
        int fds[MSG_MAX_FDS];
        unsigned n_fds = 0;
        Msg m = {.type = MSG_WARM_GO};
        Cgroup *cg = NULL;
        pid_t pid = w->pid, helper = w->helper;
        int pidfd, ctl, r;

        *err = (SandboxError){};
        if (spec.tmp_size == 0)
                spec.tmp_size = SANDBOX_DEFAULT_TMP_SIZE;
        r = check_spec(&spec, err);
        if (r < 0)
                goto fail_warm;
        if (!sandbox_warm_fits(w, &spec)) {
                r = sandbox_fail(err, SANDBOX_STEP_PREPARE, -EINVAL,
                                 "this spec does not fit a warm sandbox");
                goto fail_warm;
        }
        copy = warm_flatten(&a, &spec, fds, &n_fds);
        if (!copy) {
                r = sandbox_fail(err, SANDBOX_STEP_PREPARE, -E2BIG,
                                 "the spec does not fit a warm sandbox's %u bytes",
                                 SANDBOX_WARM_ARENA);
                goto fail_warm;
        }
        s = calloc(1, sizeof *s);
        if (!s) {
                r = sandbox_fail(err, SANDBOX_STEP_PREPARE, -ENOMEM, "allocate");
                goto fail_warm;
        }
        m.value = (int32_t)n_fds;
        r = msg_send_fds(w->ctl, &m, fds, n_fds);
        if (r < 0) {
                sandbox_fail(err, SANDBOX_STEP_PREPARE, r, "hand the app to a warm sandbox");
                goto fail_warm;
        }
        /* From here spawn_finish() owns the child, its fds, its leaf and the
         * helper. The child is in every leaf already (sandbox_warm_new()), with no
         * limit: send_cgroup() writes the app's before the child may go on. While
         * it builds the app's part of the jail, the leaf takes the app's name
         * where the hierarchies allow (v1); elsewhere, or if a leaf of that name is
         * left over, it keeps its own, which the Sandbox's cgroup handle carries. */
        pidfd = TAKE_FD(w->pidfd);
        ctl = TAKE_FD(w->ctl);
        cg = TAKE_PTR(w->cg);
        w->helper = -1;
        sandbox_warm_free(w);
        if (cg && spec.cgroup_label)
                (void)cgroup_rename(cg, spec.cgroup_label);
        r = spawn_finish(&spec, TAKE_PTR(s), cg, pid, &pidfd, &ctl, helper, CGROUP_ENTRY_DONE, ret,
                         err);
        safe_close(pidfd);
        safe_close(ctl);
        return r;

fail_warm:
        sandbox_warm_free(w);
        return r;
}

int sandbox_signal(Sandbox *s, int sig)
{
        if (s->exited || s->pidfd < 0)
                return -ESRCH;
        if (syscall(SYS_pidfd_send_signal, s->pidfd, sig, NULL, 0) < 0)
                return negative_errno();
        return 0;
}

static void sandbox_finish(Sandbox *s, int code, int status)
{
        siginfo_t si = {};
        uint64_t oom_kills;

        reap(s->pid, s->pidfd, &si);
        if (code < 0 && si.si_pid == 0) {
                /* Not our child (adopted after its spawner died: its parent now
                 * reaps it), so no status to read. init exits by itself only
                 * after its report; without one, something killed it, and from
                 * outside a namespace's init dies of SIGKILL alone. */
                code = CLD_KILLED;
                status = SIGKILL;
        } else if (code < 0) {
                /* init died without a report (SIGKILL from outside, or the OOM
                 * killer picked it): its fate is the app's. */
                code = si.si_code == CLD_EXITED ? CLD_EXITED : CLD_KILLED;
                status = si.si_status;
        }
        s->exit.code = code == CLD_DUMPED ? CLD_KILLED : code;
        s->exit.status = status;
        /* Only the OOM counter (one file), not every stat: the caller's exit waits
         * on this. Read once, with no wait: Linux counts an OOM kill in the
         * victim's memory cgroup (memory.events and v1 memory.oom_control
         * "oom_kill") before it sends the SIGKILL (mm/oom_kill.c,
         * __oom_kill_process(): "Raise event before sending signal", since 4.13),
         * so by the time init reports the app killed, or is reaped itself, the
         * count holds that kill. The baseline is from before the app could run
         * (send_cgroup()). */
        if (s->cgroup && cgroup_oom_kills(s->cgroup, &oom_kills) >= 0 &&
            oom_kills > s->oom_kills_before)
                s->exit.oom_kills = oom_kills - s->oom_kills_before;
        s->exit.oom_killed =
                s->exit.code == CLD_KILLED && status == SIGKILL && s->exit.oom_kills > 0;
        s->exited = true;
        s->pidfd = safe_close(s->pidfd);
}

int sandbox_process(Sandbox *s)
{
        Msg m;
        int r;

        if (s->exited)
                return 1;
        for (;;) {
                r = msg_recv(s->ctl_fd, &m);
                if (r == -EAGAIN || r == -EINTR) {
                        struct pollfd p = {.fd = s->ctl_fd, .events = POLLIN};

                        if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
                                return 0;
                        continue;
                }
                if (r < 0) {
                        sandbox_finish(s, -1, 0);
                        return 1;
                }
                if (m.type == MSG_INIT_EXEC) {
                        s->init_exec = m.value == 0 ? 1 : m.value > 0 ? -m.value : -EIO;
                        continue;
                }
                if (m.type != MSG_EXITED)
                        continue;
                if (WIFEXITED(m.value))
                        sandbox_finish(s, CLD_EXITED, WEXITSTATUS(m.value));
                else
                        sandbox_finish(s, CLD_KILLED, WTERMSIG(m.value));
                return 1;
        }
}

int sandbox_wait(Sandbox *s, SandboxExit *ret)
{
        while (!s->exited) {
                struct pollfd p = {.fd = s->ctl_fd, .events = POLLIN};

                if (RETRY_EINTR(poll(&p, 1, -1)) < 0)
                        return negative_errno();
                (void)sandbox_process(s);
        }
        if (ret)
                *ret = s->exit;
        return 0;
}

/* The pid /proc/self/fdinfo says pidfd refers to (-1: the process is gone), or
 * -errno (-EBADF: not a pidfd). */
static int pidfd_pid(int pidfd, pid_t *ret)
{
        char path[64], buf[1024];
        _cleanup_close_ int fd = -EBADF;
        const char *p;
        ssize_t k;
        long v;

        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        k = read(fd, buf, sizeof buf - 1);
        if (k < 0)
                return negative_errno();
        buf[k] = 0;
        p = strstr(buf, "\nPid:\t");
        if (!p)
                return -EBADF; /* not a pidfd: it has no "Pid:" line */
        v = strtol(p + 6, NULL, 10);
        *ret = v > 0 && v <= INT_MAX ? (pid_t)v : -1;
        return 0;
}

/* Whether fd is what readlink /proc/self/fd/fd names want ("anon_inode:[pidfd]"). */
static bool fd_is_anon(int fd, const char *want)
{
        char path[64], target[64];
        ssize_t k;

        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        k = readlink(path, target, sizeof target - 1);
        if (k < 0)
                return false;
        target[k] = 0;
        return strcmp(target, want) == 0;
}

int sandbox_adopt(SandboxAdoption *a, Sandbox **ret)
{
        _cleanup_close_ int pidfd = a->pidfd, ctl = a->ctl_fd, notify = a->seccomp_notify_fd;
        _cleanup_free_ Sandbox *s = NULL;
        int type = 0, domain = 0, r;
        socklen_t len = sizeof type;
        pid_t pid;

        a->pidfd = a->ctl_fd = a->seccomp_notify_fd = -EBADF;
        if (a->pid <= 0 || a->app_pid <= 0 || (a->cgroups && !a->cgroup_name))
                return -EINVAL;
        if (pidfd < 0 || ctl < 0)
                return -EBADF;
        r = pidfd_pid(pidfd, &pid);
        if (r < 0)
                return r == -ENOENT ? -EBADF : r;
        /* -1: init is gone (and reaped) already; its report waits in ctl. */
        if (pid > 0 && pid != a->pid)
                return -ESRCH;
        if (getsockopt(ctl, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
                return -EBADF;
        len = sizeof domain;
        if (getsockopt(ctl, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX)
                return -EBADF;
        if (notify >= 0 && !fd_is_anon(notify, "anon_inode:seccomp notify"))
                return -EBADF;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        if (a->cgroups) {
                r = cgroup_open(a->cgroups, a->cgroup_name, &s->cgroup);
                if (r < 0)
                        return r;
        }
        if (fcntl(ctl, F_SETFL, O_NONBLOCK) < 0) {
                s->cgroup = cgroup_close(s->cgroup);
                return negative_errno();
        }
        s->pid = a->pid;
        s->app_pid = a->app_pid;
        s->pidfd = TAKE_FD(pidfd);
        s->ctl_fd = TAKE_FD(ctl);
        s->seccomp_notify_fd = notify >= 0 ? TAKE_FD(notify) : -1;
        s->oom_kills_before = a->oom_kills_before;
        s->init_exec = a->init_exec;
        s->adopted = true;
        *ret = TAKE_PTR(s);
        return 0;
}

pid_t sandbox_release(Sandbox *s)
{
        pid_t pid;

        if (!s)
                return -1;
        pid = s->pid;
        s->cgroup = cgroup_close(s->cgroup);
        safe_close(s->pidfd);
        safe_close(s->ctl_fd);
        safe_close(s->seccomp_notify_fd);
        free(s);
        return pid;
}

Sandbox *sandbox_free(Sandbox *s)
{
        if (!s)
                return NULL;
        if (!s->exited) {
                if (s->cgroup)
                        cgroup_kill(s->cgroup);
                if (s->pidfd >= 0)
                        syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
                sandbox_finish(s, -1, 0);
        }
        cgroup_destroy(s->cgroup);
        safe_close(s->pidfd);
        safe_close(s->ctl_fd);
        safe_close(s->seccomp_notify_fd);
        free(s);
        return NULL;
}
