/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The keeper (src/keeper) and sandbox adoption (sandbox_adopt()), with real
 * sandboxes and a real cella-keeper: a forked "daemon" spawns a sandbox with
 * SandboxSpec.survive_parent, hands its fds to the keeper and is SIGKILLed; the
 * test then adopts the sandbox from the keeper and gets the app's real exit
 * status and output. Also: the keeper's grace kill when nobody comes back, a
 * sandbox nobody holds dying, and incomplete or forged fd sets refused. Needs root
 * (uid maps, mounts, cgroups); otherwise each test says SKIP and the run exits 77.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "keeper/keeper.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"
#include "skip.h"
#include "test-util.h"

#define TEST_HOST_UID ((uid_t)0x7ffe0100u) /* past cella's ranges, as test-sandbox's */
#define TEST_LABEL    "t-keeper"

static char app_dir[] = "/tmp/test-keeper-app-XXXXXX";
static char state_dir[] = "/tmp/test-keeper-state-XXXXXX";
static char *const test_envp[] = {"PATH=/usr/bin:/bin", "HOME=/", NULL};
/* The owner tag of the daemon's leaves (cgroup_manager_set_owner()), as cellad's
 * names its state directory: this test run's own. */
static char owner_tag[32];

#define REQUIRE_ROOT()                                                                             \
        do {                                                                                       \
                if (geteuid() != 0)                                                                \
                        SKIP_TEST("sandboxes need root");                                          \
        } while (0)

static void manager_freep(CgroupManager **m)
{
        cgroup_manager_free(*m);
}

/* Per test (a checked fixture: each test is a fork of its own): a fresh app folder
 * with the app and its fifo, and a fresh state dir with run/ (0700). */
static void setup(void)
{
        _cleanup_free_ char *path = NULL, *run = NULL;
        static const char app[] = "#!/bin/sh\n"
                                  "echo started\n"
                                  "read x < /app/go\n"
                                  "echo \"got $x\"\n"
                                  "exit 7\n";
        _cleanup_close_ int fd = -EBADF;

        if (geteuid() != 0)
                return;
        snprintf(owner_tag, sizeof owner_tag, "tkeeper%d", (int)getpid());
        strcpy(app_dir + strlen(app_dir) - 6, "XXXXXX");
        strcpy(state_dir + strlen(state_dir) - 6, "XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(app_dir));
        ck_assert_ptr_nonnull(mkdtemp(state_dir));
        ck_assert_int_eq(chmod(app_dir, 0755), 0);
        ck_assert_int_ge(asprintf(&run, "%s/run", state_dir), 0);
        ck_assert_int_eq(mkdir(run, 0700), 0);
        ck_assert_int_ge(asprintf(&path, "%s/app", app_dir), 0);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, app, sizeof app - 1), 0);
        free(path);
        ck_assert_int_ge(asprintf(&path, "%s/go", app_dir), 0);
        ck_assert_int_eq(mkfifo(path, 0666), 0);
        ck_assert_int_eq(chmod(path, 0666), 0);
}

static void teardown(void)
{
        _cleanup_(manager_freep) CgroupManager *m = NULL;

        if (geteuid() != 0)
                return;
        rm_tree(app_dir);
        rm_tree(state_dir);
        /* A failed test's leftovers: leaves of its daemon's, or of owners gone. */
        if (cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m) >= 0)
                (void)cgroup_sweep_owned(m, owner_tag, NULL);
}

static int pidfd_open_(pid_t pid)
{
        return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Waits up to ms for fd to be readable (a pidfd: its process exited). */
static bool wait_readable(int fd, int ms)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};

        return RETRY_EINTR(poll(&p, 1, ms)) == 1;
}

static bool leaf_exists(CgroupManager *m, const char *name)
{
        Cgroup *cg = NULL;
        int r = cgroup_open(m, name, &cg);

        cgroup_close(cg);
        return r == 0;
}

/* What the forked daemon tells the test. */
typedef struct Report {
        int error; /* 0, or the errno of what failed (step in what) */
        char what[64];
        pid_t init_pid, keeper_pid;
        char cgroup_name[KEEPER_NAME_MAX];
} Report;

static void report(int fd, Report *r)
{
        (void)!write(fd, r, sizeof *r);
}

/*
 * The "daemon": spawns the app with survive_parent (its leaf owned by the keeper's
 * pid), hands its fds to the keeper (hold: with_keeper), reports, and waits to be
 * killed. Runs in a fork of the test: never returns, never asserts.
 */
_Noreturn static void daemon_main(int rep, bool with_keeper, unsigned grace_s)
{
        CgroupManager *m = NULL;
        SeccompProgram *prog = NULL;
        SandboxBind bind = {.source = app_dir, .target = "/app"};
        char *argv[] = {(char *)"app", NULL};
        int out[2], keeper = -EBADF, r;
        SandboxError err = {};
        Sandbox *s = NULL;
        Report rp = {};
        SandboxSpec spec;

#define FAIL(r_, what_)                                                                            \
        do {                                                                                       \
                rp.error = -(r_);                                                                  \
                snprintf(rp.what, sizeof rp.what, "%s", what_);                                    \
                report(rep, &rp);                                                                  \
                _exit(1);                                                                          \
        } while (0)

        if ((r = cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m)) < 0)
                FAIL(r, "cgroup manager");
        if ((r = seccomp_program_builtin(&(SeccompOptions){.notify = true}, &prog)) < 0)
                FAIL(r, "seccomp");
        if (with_keeper) {
                keeper = keeper_ensure(CELLA_KEEPER_PATH, state_dir, grace_s, &rp.keeper_pid);
                if (keeper < 0)
                        FAIL(keeper, "keeper_ensure");
                if ((r = cgroup_manager_set_owner(m, owner_tag)) < 0)
                        FAIL(r, "cgroup_manager_set_owner");
        }
        if (pipe2(out, O_CLOEXEC) < 0)
                FAIL(-errno, "pipe");
        spec = (SandboxSpec){
                .hostname = "t-keeper",
                .host_uid = TEST_HOST_UID,
                .host_gid = TEST_HOST_UID,
                .binds = &bind,
                .n_binds = 1,
                .exec_path = "/app/app",
                .argv = argv,
                .envp = test_envp,
                .seccomp = prog,
                .stdio = {-1, out[1], out[1]},
                .channel_fd = -1,
                .init_path = CELLA_INIT_PATH,
                .cgroups = m,
                .cgroup_label = TEST_LABEL,
                .survive_parent = true,
        };
        if ((r = sandbox_spawn(&spec, &s, &err)) < 0)
                FAIL(r, "sandbox_spawn");
        close(out[1]);
        rp.init_pid = s->pid;
        snprintf(rp.cgroup_name, sizeof rp.cgroup_name, "%s", cgroup_name(s->cgroup));
        if (with_keeper) {
                KeeperSet set = {
                        .fds = {-EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF}};
                const char *unified = cgroup_path(s->cgroup, "");

                snprintf(set.rec.id, sizeof set.rec.id, "org.cella.test.keeper");
                set.rec.generation = 1;
                set.rec.pid = s->pid;
                set.rec.app_pid = s->app_pid;
                set.rec.uid = TEST_HOST_UID;
                set.rec.oom_kills_before = s->oom_kills_before;
                snprintf(set.rec.cgroup_name, sizeof set.rec.cgroup_name, "%s",
                         cgroup_name(s->cgroup));
                if (unified)
                        snprintf(set.rec.cgroup_kill, sizeof set.rec.cgroup_kill, "%s", unified);
                snprintf(set.rec.app_dir, sizeof set.rec.app_dir, "%s", app_dir);
                set.fds[KEEPER_FD_PIDFD] = s->pidfd;
                set.fds[KEEPER_FD_CTL] = s->ctl_fd;
                set.fds[KEEPER_FD_NOTIFY] = s->seccomp_notify_fd;
                set.fds[KEEPER_FD_STDOUT] = out[0];
                set.rec.fds = 0;
                for (unsigned i = 0; i < _KEEPER_FD_MAX; i++)
                        if (set.fds[i] >= 0)
                                set.rec.fds |= 1u << i;
                if ((r = keeper_hold(keeper, &set)) < 0)
                        FAIL(r, "keeper_hold");
        }
        report(rep, &rp);
        for (;;)
                pause();
#undef FAIL
}

/* Forks the daemon and reads its report; fails the test if it failed. */
static pid_t start_daemon(bool with_keeper, unsigned grace_s, Report *rp)
{
        int p[2];
        pid_t pid;

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(p[0]);
                daemon_main(p[1], with_keeper, grace_s);
        }
        close(p[1]);
        ck_assert_int_eq(read(p[0], rp, sizeof *rp), (ssize_t)sizeof *rp);
        close(p[0]);
        ck_assert_msg(rp->error == 0, "daemon: %s: %s", rp->what, strerror(rp->error));
        return pid;
}

static void kill_daemon(pid_t pid)
{
        int status;

        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static char *keeper_socket(void)
{
        char *p = NULL;

        ck_assert_int_ge(asprintf(&p, "%s/%s", state_dir, KEEPER_SOCKET), 0);
        return p;
}

/* Writes line into the app's fifo (blocks until the app opens it to read). */
static void tell_app(const char *line)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;

        ck_assert_int_ge(asprintf(&path, "%s/go", app_dir), 0);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, line, strlen(line)), 0);
}

/*
 * The daemon dies (SIGKILL) with its app running; the test adopts the app from the
 * keeper: the app ran on meanwhile, its output waited in the pipe, its exit status
 * comes through the adopted ctl socket, and the leaf goes with sandbox_free().
 * subreaper: the test is the subreaper the orphaned init goes to (so it is our
 * child again, as after a re-exec); else init is reparented elsewhere.
 */
static void adopt_after_sigkill(bool subreaper)
{
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_free_ char *sock = keeper_socket(), *out = NULL;
        _cleanup_close_ int init_fd = -EBADF, keeper_fd = -EBADF, k = -EBADF;
        KeeperSet *sets = NULL;
        SandboxAdoption a;
        Sandbox *s = NULL;
        SandboxExit e;
        size_t n = 0, len = 0;
        pid_t d, kpid = 0;
        Report rp;

        if (subreaper)
                ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
        ck_assert_int_ge(cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m), 0);
        d = start_daemon(true, 30, &rp);
        init_fd = pidfd_open_(rp.init_pid);
        keeper_fd = pidfd_open_(rp.keeper_pid);
        ck_assert_int_ge(init_fd, 0);
        ck_assert_int_ge(keeper_fd, 0);
        /* The leaf is named after its owner's tag, not the daemon's pid: no sweep
         * takes it for a leftover once the daemon is gone. */
        {
                char want[64];

                snprintf(want, sizeof want, "@%s", owner_tag);
                ck_assert_ptr_nonnull(strstr(rp.cgroup_name, want));
        }
        kill_daemon(d);

        /* No parent-death signal: the sandbox runs on, and a sweep keeps its leaf. */
        ck_assert(!wait_readable(init_fd, 200));
        ck_assert_int_ge(cgroup_sweep(m), 0);
        ck_assert(leaf_exists(m, rp.cgroup_name));

        k = keeper_connect(sock, &kpid);
        ck_assert_int_ge(k, 0);
        ck_assert_int_eq(kpid, rp.keeper_pid);
        ck_assert_int_eq(keeper_take(k, &sets, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(sets[0].rec.id, "org.cella.test.keeper");
        ck_assert_int_eq(sets[0].rec.pid, rp.init_pid);
        ck_assert_str_eq(sets[0].rec.cgroup_name, rp.cgroup_name);
        ck_assert_int_ge(sets[0].fds[KEEPER_FD_NOTIFY], 0);
        ck_assert_int_lt(sets[0].fds[KEEPER_FD_CHANNEL], 0);
        /* The keeper keeps its own copies: an adopter that dies mid-way loses nothing,
         * the next one takes the set again. */
        {
                _cleanup_close_ int k2 = keeper_connect(sock, NULL);
                KeeperSet *again = NULL;
                size_t n2 = 0;

                ck_assert_int_ge(k2, 0);
                ck_assert_int_eq(keeper_take(k2, &again, &n2), 0);
                ck_assert_uint_eq(n2, 1);
                ck_assert_int_eq(again[0].rec.pid, rp.init_pid);
                keeper_set_done(&again[0]);
                free(again);
        }

        a = (SandboxAdoption){
                .pid = sets[0].rec.pid,
                .app_pid = sets[0].rec.app_pid,
                .pidfd = TAKE_FD(sets[0].fds[KEEPER_FD_PIDFD]),
                .ctl_fd = TAKE_FD(sets[0].fds[KEEPER_FD_CTL]),
                .seccomp_notify_fd = TAKE_FD(sets[0].fds[KEEPER_FD_NOTIFY]),
                .cgroups = m,
                .cgroup_name = sets[0].rec.cgroup_name,
                .oom_kills_before = sets[0].rec.oom_kills_before,
        };
        ck_assert_int_eq(sandbox_adopt(&a, &s), 0);
        ck_assert(s->adopted);
        ck_assert_ptr_nonnull(s->cgroup);
        ck_assert_int_eq(sandbox_process(s), 0); /* still running */

        tell_app("hello\n");
        ck_assert_int_eq(sandbox_wait(s, &e), 0);
        ck_assert_int_eq(e.code, CLD_EXITED);
        ck_assert_int_eq(e.status, 7);
        /* Everything it wrote, before and after the daemon died, through the pipe
         * the keeper held. */
        ck_assert_int_eq(read_full_fd(sets[0].fds[KEEPER_FD_STDOUT], 4096, &out, &len), 0);
        ck_assert_str_eq(out, "started\ngot hello\n");
        s = sandbox_free(s);
        ck_assert(!leaf_exists(m, rp.cgroup_name));
        ck_assert(wait_readable(init_fd, 5000));
        if (subreaper) {
                /* It was ours to reap, and sandbox_free() did. */
                siginfo_t si = {};

                ck_assert_int_eq(waitid(P_PIDFD, init_fd, &si, WEXITED | WNOHANG), -1);
                ck_assert_int_eq(errno, ECHILD);
        }

        ck_assert_int_eq(keeper_drop(k, "org.cella.test.keeper", 1), 0);
        keeper_set_done(&sets[0]);
        free(sets);
        ck_assert_int_eq(keeper_take(k, &sets, &n), 0);
        ck_assert_uint_eq(n, 0);
        free(sets);
        ck_assert_int_eq(keeper_bye(k), 0);
        ck_assert(wait_readable(keeper_fd, 5000));
}

START_TEST(test_adopt_after_sigkill)
{
        REQUIRE_ROOT();
        adopt_after_sigkill(false);
}
END_TEST

START_TEST(test_adopt_as_parent)
{
        REQUIRE_ROOT();
        adopt_after_sigkill(true);
}
END_TEST

/* The app exits while no daemon runs: its status waits in ctl for the adopter. */
START_TEST(test_exit_while_no_daemon)
{
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_free_ char *sock = keeper_socket();
        _cleanup_close_ int init_fd = -EBADF, k = -EBADF;
        KeeperSet *sets = NULL;
        SandboxAdoption a;
        Sandbox *s = NULL;
        SandboxExit e;
        size_t n = 0;
        Report rp;
        pid_t d;

        REQUIRE_ROOT();
        ck_assert_int_ge(cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m), 0);
        d = start_daemon(true, 30, &rp);
        init_fd = pidfd_open_(rp.init_pid);
        kill_daemon(d);
        tell_app("bye\n");
        ck_assert(wait_readable(init_fd, 10000)); /* exited, with nobody to read it */

        k = keeper_connect(sock, NULL);
        ck_assert_int_ge(k, 0);
        ck_assert_int_eq(keeper_take(k, &sets, &n), 0);
        ck_assert_uint_eq(n, 1);
        a = (SandboxAdoption){
                .pid = sets[0].rec.pid,
                .app_pid = sets[0].rec.app_pid,
                .pidfd = TAKE_FD(sets[0].fds[KEEPER_FD_PIDFD]),
                .ctl_fd = TAKE_FD(sets[0].fds[KEEPER_FD_CTL]),
                .seccomp_notify_fd = -1,
                .cgroups = m,
                .cgroup_name = sets[0].rec.cgroup_name,
        };
        ck_assert_int_eq(sandbox_adopt(&a, &s), 0);
        ck_assert_int_eq(sandbox_process(s), 1);
        ck_assert_int_eq(sandbox_wait(s, &e), 0);
        ck_assert_int_eq(e.code, CLD_EXITED);
        ck_assert_int_eq(e.status, 7);
        s = sandbox_free(s);
        ck_assert(!leaf_exists(m, rp.cgroup_name));
        keeper_set_done(&sets[0]);
        free(sets);
        ck_assert_int_eq(keeper_bye(k), 0);
}
END_TEST

/* Nobody comes back: the keeper kills the sandbox at the end of its grace and
 * exits; the next sweep removes the leaf (its owner, the keeper, is gone). */
START_TEST(test_grace_kill)
{
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_close_ int init_fd = -EBADF, keeper_fd = -EBADF;
        Report rp;
        pid_t d;

        REQUIRE_ROOT();
        /* The keeper, orphaned at its start, comes to us: we reap it once it exits
         * (a zombie's pid is alive to the sweep; this host's pid 1 may not reap). */
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
        ck_assert_int_ge(cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m), 0);
        d = start_daemon(true, 2, &rp);
        init_fd = pidfd_open_(rp.init_pid);
        keeper_fd = pidfd_open_(rp.keeper_pid);
        ck_assert_int_ge(init_fd, 0);
        ck_assert_int_ge(keeper_fd, 0);
        kill_daemon(d);
        /* Not before the grace (2 s) has passed: a late kill is only later. */
        ck_assert_msg(!wait_readable(init_fd, 1000), "the keeper killed before its grace");
        ck_assert_msg(wait_readable(init_fd, 15000), "the keeper did not kill the sandbox");
        ck_assert_msg(wait_readable(keeper_fd, 15000), "the keeper did not exit");
        {
                siginfo_t si = {};

                ck_assert_int_eq(waitid(P_PIDFD, keeper_fd, &si, WEXITED), 0);
                ck_assert_int_eq(si.si_code, CLD_EXITED);
                ck_assert_int_eq(si.si_status, 0);
        }
        ck_assert(leaf_exists(m, rp.cgroup_name));
        ck_assert_int_ge(cgroup_sweep(m), 0);
        ck_assert(leaf_exists(m, rp.cgroup_name)); /* tagged: no plain sweep's */
        ck_assert_int_ge(cgroup_sweep_owned(m, owner_tag, NULL), 1);
        ck_assert(!leaf_exists(m, rp.cgroup_name));
}
END_TEST

/* A survive_parent sandbox whose ctl nobody holds any more (its daemon died before
 * it handed the fds to a keeper) dies: it is never left running unsupervised. */
START_TEST(test_unheld_sandbox_dies)
{
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_close_ int init_fd = -EBADF;
        Report rp;
        pid_t d;

        REQUIRE_ROOT();
        ck_assert_int_ge(cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m), 0);
        d = start_daemon(false, 0, &rp);
        init_fd = pidfd_open_(rp.init_pid);
        ck_assert_int_ge(init_fd, 0);
        ck_assert(!wait_readable(init_fd, 100));
        kill_daemon(d);
        ck_assert_msg(wait_readable(init_fd, 10000), "the unheld sandbox runs on");
        /* Its leaf's owner (the daemon) is gone: swept. */
        ck_assert_int_ge(cgroup_sweep(m), 1);
        ck_assert(!leaf_exists(m, rp.cgroup_name));
}
END_TEST

/* Sends a HOLD whose record says two fds and carries n_fds of them. */
static int send_forged(int sock, uint32_t mask, const int *fds, unsigned n_fds)
{
        char control[CMSG_SPACE(sizeof(int) * 4)] = {};
        _cleanup_free_ KeeperMsg *m = calloc(1, sizeof *m);
        struct iovec iov = {.iov_base = m, .iov_len = sizeof *m};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

        ck_assert_ptr_nonnull(m);
        *m = (KeeperMsg){.magic = KEEPER_MAGIC, .op = KEEPER_OP_HOLD};
        snprintf(m->rec.id, sizeof m->rec.id, "org.cella.test.forged");
        m->rec.pid = 1;
        m->rec.fds = mask;
        if (n_fds > 0) {
                struct cmsghdr *c;

                mh.msg_control = control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof *m ? 0 : -errno;
}

/* Incomplete or forged sets are refused by the keeper and by sandbox_adopt(). */
START_TEST(test_incomplete_refused)
{
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        _cleanup_free_ char *sock = keeper_socket();
        _cleanup_close_ int k = -EBADF, k2 = -EBADF, self = -EBADF;
        _cleanup_close_pair_ int pp[2] = {-EBADF, -EBADF}, sp[2] = {-EBADF, -EBADF};
        KeeperSet set = {.fds = {-EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF}};
        KeeperSet *sets = NULL;
        SandboxAdoption a;
        Sandbox *s = NULL;
        int fds[_KEEPER_FD_MAX];
        KeeperMsg *reply = calloc(1, sizeof *reply);
        size_t n = 7;
        pid_t kp;

        REQUIRE_ROOT();
        ck_assert_ptr_nonnull(reply);
        ck_assert_int_ge(cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m), 0);
        kp = keeper_spawn(CELLA_KEEPER_PATH, state_dir, 30);
        ck_assert_int_gt(kp, 0);
        /* One keeper per state dir. */
        ck_assert_int_eq(keeper_spawn(CELLA_KEEPER_PATH, state_dir, 30), -EEXIST);
        k = keeper_connect(sock, NULL);
        ck_assert_int_ge(k, 0);
        /* A second client, so that the keeper stays when the first is hung up on
         * (with nothing held and no client, it would exit). */
        k2 = keeper_connect(sock, NULL);
        ck_assert_int_ge(k2, 0);
        self = pidfd_open_(getpid());
        ck_assert_int_ge(pipe2(pp, O_CLOEXEC), 0);
        ck_assert_int_ge(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);

        /* A set without its ctl socket: refused before it is sent. */
        snprintf(set.rec.id, sizeof set.rec.id, "org.cella.test.incomplete");
        set.rec.pid = getpid();
        set.fds[KEEPER_FD_PIDFD] = self;
        set.rec.fds = 1u << KEEPER_FD_PIDFD;
        ck_assert_int_eq(keeper_hold(k, &set), -EINVAL);
        /* ... and by the keeper when a client sends it anyway. */
        ck_assert_int_eq(send_forged(k, 1u << KEEPER_FD_PIDFD, &self, 1), 0);
        ck_assert_int_eq(keeper_msg_recv(k, reply, fds, 5000), 0);
        ck_assert_int_eq(reply->op, KEEPER_OP_ERROR);
        ck_assert_int_eq(reply->error, EINVAL);
        /* A cgroup.kill path outside /sys/fs/cgroup: refused. */
        set.fds[KEEPER_FD_CTL] = sp[0];
        set.rec.fds |= 1u << KEEPER_FD_CTL;
        snprintf(set.rec.cgroup_kill, sizeof set.rec.cgroup_kill, "/sys/fs/cgroup/../../etc");
        ck_assert_int_eq(keeper_hold(k, &set), -EINVAL);
        /* A record that says two fds and carries one: the keeper hangs up on that
         * client (it cannot trust the stream any more). */
        ck_assert_int_eq(send_forged(k, KEEPER_FDS_REQUIRED, &self, 1), 0);
        ck_assert_int_eq(keeper_msg_recv(k, reply, fds, 5000), -ECONNRESET);
        /* Nothing of those is held. */
        ck_assert_int_eq(keeper_take(k2, &sets, &n), 0);
        ck_assert_uint_eq(n, 0);
        free(sets);

        /* sandbox_adopt(): ctl not a SOCK_SEQPACKET socket. */
        a = (SandboxAdoption){.pid = getpid(),
                              .app_pid = 2,
                              .pidfd = fcntl(self, F_DUPFD_CLOEXEC, 3),
                              .ctl_fd = fcntl(pp[0], F_DUPFD_CLOEXEC, 3),
                              .seccomp_notify_fd = -1};
        ck_assert_int_eq(sandbox_adopt(&a, &s), -EBADF);
        ck_assert_int_eq(a.pidfd, -EBADF); /* taken, closed */
        /* A pidfd of another process than the record says. */
        a = (SandboxAdoption){.pid = kp,
                              .app_pid = 2,
                              .pidfd = fcntl(self, F_DUPFD_CLOEXEC, 3),
                              .ctl_fd = fcntl(sp[0], F_DUPFD_CLOEXEC, 3),
                              .seccomp_notify_fd = -1};
        ck_assert_int_eq(sandbox_adopt(&a, &s), -ESRCH);
        /* Not a pidfd at all. */
        a = (SandboxAdoption){.pid = getpid(),
                              .app_pid = 2,
                              .pidfd = fcntl(pp[0], F_DUPFD_CLOEXEC, 3),
                              .ctl_fd = fcntl(sp[0], F_DUPFD_CLOEXEC, 3),
                              .seccomp_notify_fd = -1};
        ck_assert_int_eq(sandbox_adopt(&a, &s), -EBADF);
        /* A "listener" that is a pipe. */
        a = (SandboxAdoption){.pid = getpid(),
                              .app_pid = 2,
                              .pidfd = fcntl(self, F_DUPFD_CLOEXEC, 3),
                              .ctl_fd = fcntl(sp[0], F_DUPFD_CLOEXEC, 3),
                              .seccomp_notify_fd = fcntl(pp[1], F_DUPFD_CLOEXEC, 3)};
        ck_assert_int_eq(sandbox_adopt(&a, &s), -EBADF);
        /* A cgroup leaf that is not there, and a name that is not a leaf's. */
        a = (SandboxAdoption){.pid = getpid(),
                              .app_pid = 2,
                              .pidfd = fcntl(self, F_DUPFD_CLOEXEC, 3),
                              .ctl_fd = fcntl(sp[0], F_DUPFD_CLOEXEC, 3),
                              .seccomp_notify_fd = -1,
                              .cgroups = m,
                              .cgroup_name = "t-keeper-none@999999"};
        ck_assert_int_eq(sandbox_adopt(&a, &s), -ENOENT);
        a = (SandboxAdoption){.pid = getpid(),
                              .app_pid = 2,
                              .pidfd = fcntl(self, F_DUPFD_CLOEXEC, 3),
                              .ctl_fd = fcntl(sp[0], F_DUPFD_CLOEXEC, 3),
                              .seccomp_notify_fd = -1,
                              .cgroups = m,
                              .cgroup_name = "../../x@1"};
        ck_assert_int_eq(sandbox_adopt(&a, &s), -EINVAL);
        ck_assert_ptr_null(s);
        ck_assert_int_eq(keeper_bye(k2), 0);
        free(reply);
}
END_TEST

/* The record follows the app's state (KEEPER_OP_NOTE: role and freeze, of its
 * generation only), and a client of protocol version 1 is hung up on. */
START_TEST(test_note_and_version)
{
        _cleanup_free_ char *sock = keeper_socket();
        _cleanup_close_ int k = -EBADF, k2 = -EBADF, self = -EBADF;
        _cleanup_close_pair_ int sp[2] = {-EBADF, -EBADF};
        KeeperSet set = {.fds = {-EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF}};
        KeeperSet *sets = NULL;
        KeeperMsg *old = calloc(1, sizeof *old);
        int fds[_KEEPER_FD_MAX];
        size_t n = 0;

        REQUIRE_ROOT();
        ck_assert_ptr_nonnull(old);
        ck_assert_int_gt(keeper_spawn(CELLA_KEEPER_PATH, state_dir, 30), 0);
        k = keeper_connect(sock, NULL);
        ck_assert_int_ge(k, 0);
        k2 = keeper_connect(sock, NULL);
        ck_assert_int_ge(k2, 0);
        self = pidfd_open_(getpid());
        ck_assert_int_ge(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        snprintf(set.rec.id, sizeof set.rec.id, "org.cella.test.note");
        set.rec.pid = getpid();
        set.rec.generation = 7;
        set.rec.role = 1;
        set.fds[KEEPER_FD_PIDFD] = self;
        set.fds[KEEPER_FD_CTL] = sp[0];
        set.rec.fds = KEEPER_FDS_REQUIRED;
        ck_assert_int_eq(keeper_hold(k, &set), 0);

        ck_assert_int_eq(keeper_note(k, "org.cella.test.note", 7, 4, 1), 0);
        ck_assert_int_eq(keeper_note(k, "org.cella.test.note", 8, 2, 2), 0);  /* not its run */
        ck_assert_int_eq(keeper_note(k, "org.cella.test.other", 7, 2, 2), 0); /* no such set */
        ck_assert_int_eq(keeper_take(k, &sets, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(sets[0].rec.role, 4);
        ck_assert_uint_eq(sets[0].rec.frozen, 1);
        ck_assert_uint_eq(sets[0].rec.generation, 7);
        keeper_set_done(&sets[0]);
        free(sets);

        /* A cellad of version 1 ("keep") is not answered: the keeper hangs up. */
        *old = (KeeperMsg){.magic = 0x6b656570u, .op = KEEPER_OP_TAKE};
        ck_assert_int_ge(send(k, old, sizeof *old, MSG_NOSIGNAL), 0);
        ck_assert_int_eq(keeper_msg_recv(k, old, fds, 5000), -ECONNRESET);
        ck_assert_int_eq(keeper_bye(k2), 0);
        free(old);
}
END_TEST

/* A record of kind for the tests below: id, group, the two fds every set has. */
static KeeperRecord record_of(KeeperKind kind, const char *id, const char *group, uint32_t fds)
{
        KeeperRecord rec = {.kind = kind, .pid = 1, .fds = fds};

        snprintf(rec.id, sizeof rec.id, "%s", id);
        snprintf(rec.group, sizeof rec.group, "%s", group);
        return rec;
}

#define MEMBER_FDS (KEEPER_FDS_REQUIRED | (1u << KEEPER_FD_CHANNEL) | (1u << KEEPER_FD_STDOUT))
#define HOST_FDS                                                                                   \
        (KEEPER_FDS_REQUIRED | (1u << KEEPER_FD_STDOUT) | (1u << KEEPER_FD_STDERR) |               \
         (1u << KEEPER_FD_STATS))

/* Every field of a packed group's records is checked as it arrives (keeper.h,
 * keeper_record_check()): no record takes a key that is not its own (an app's id
 * with no ':', a host's "group:<its group>"), names a group that is not a group
 * name, or carries fds its kind has no use for. */
START_TEST(test_record_kinds)
{
        KeeperRecord rec;

        /* Good ones of each kind. */
        rec = record_of(KEEPER_KIND_APP, "org.cella.a", "", KEEPER_FDS_REQUIRED);
        ck_assert_int_eq(keeper_record_check(&rec), 0);
        rec = record_of(KEEPER_KIND_HOST, "group:g-1_x", "g-1_x", HOST_FDS);
        rec.n_members = 3;
        ck_assert_int_eq(keeper_record_check(&rec), 0);
        rec = record_of(KEEPER_KIND_MEMBER, "org.cella.m", "g-1_x", MEMBER_FDS);
        rec.member_index = 2;
        ck_assert_int_eq(keeper_record_check(&rec), 0);

        /* An app with a group, an index, a count, or a host's key. */
        rec = record_of(KEEPER_KIND_APP, "org.cella.a", "g", KEEPER_FDS_REQUIRED);
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_APP, "org.cella.a", "", KEEPER_FDS_REQUIRED);
        rec.member_index = 1;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_APP, "org.cella.a", "", KEEPER_FDS_REQUIRED);
        rec.n_members = 1;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_APP, "group:g", "", KEEPER_FDS_REQUIRED);
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_APP, "org.cella.a", "", KEEPER_FDS_REQUIRED);
        rec.member_run = 1;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);

        /* A host whose key is another group's, or not a host's; a group that is not a
         * group name (upper case, a path, empty, too long); no room for an app; a
         * channel or a pty (a host has neither). */
        rec = record_of(KEEPER_KIND_HOST, "group:other", "g", HOST_FDS);
        rec.n_members = 1;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_HOST, "org.cella.a", "g", HOST_FDS);
        rec.n_members = 1;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_HOST, "group:G", "G", HOST_FDS);
        rec.n_members = 1;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_HOST, "group:../x", "../x", HOST_FDS);
        rec.n_members = 1;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_HOST, "group:", "", HOST_FDS);
        rec.n_members = 1;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_HOST, "group:g", "g", HOST_FDS);
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL); /* n_members 0 */
        rec.n_members = KEEPER_SETS_MAX + 1;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        /* A host's channel is its control channel (version 4): taken; a run is a
         * member's only, in a host's or an app's record refused. */
        rec = record_of(KEEPER_KIND_HOST, "group:g", "g", HOST_FDS | (1u << KEEPER_FD_CHANNEL));
        rec.n_members = 1;
        ck_assert_int_eq(keeper_record_check(&rec), 0);
        rec.member_run = 3;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_MEMBER, "org.cella.m", "g", MEMBER_FDS);
        rec.member_run = 3;
        ck_assert_int_eq(keeper_record_check(&rec), 0);
        rec = record_of(KEEPER_KIND_HOST, "group:g", "g", HOST_FDS | (1u << KEEPER_FD_PTY));
        rec.n_members = 1;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        /* A group name that fills its array with no NUL. */
        rec = record_of(KEEPER_KIND_HOST, "group:g", "g", HOST_FDS);
        rec.n_members = 1;
        memset(rec.group, 'a', sizeof rec.group);
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);

        /* A member that takes a host's key, has no group, has no channel or no log
         * pipe, or carries what only a host or an app has; an index out of range; a
         * count. */
        rec = record_of(KEEPER_KIND_MEMBER, "group:g", "g", MEMBER_FDS);
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_MEMBER, "org.cella.m", "", MEMBER_FDS);
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_MEMBER, "org.cella.m", "g",
                        MEMBER_FDS & ~(1u << KEEPER_FD_CHANNEL));
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_MEMBER, "org.cella.m", "g",
                        MEMBER_FDS & ~(1u << KEEPER_FD_STDOUT));
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        for (KeeperFd f = KEEPER_FD_NOTIFY; f < _KEEPER_FD_MAX; f++) {
                if (f == KEEPER_FD_CHANNEL || f == KEEPER_FD_STDOUT)
                        continue;
                rec = record_of(KEEPER_KIND_MEMBER, "org.cella.m", "g", MEMBER_FDS | (1u << f));
                ck_assert_msg(keeper_record_check(&rec) == -EINVAL, "a member with fd %d", f);
        }
        rec = record_of(KEEPER_KIND_MEMBER, "org.cella.m", "g", MEMBER_FDS);
        rec.member_index = KEEPER_SETS_MAX;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of(KEEPER_KIND_MEMBER, "org.cella.m", "g", MEMBER_FDS);
        rec.n_members = 2;
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);

        /* A kind this version does not know. */
        rec = record_of(_KEEPER_KIND_MAX, "org.cella.a", "", KEEPER_FDS_REQUIRED);
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
        rec = record_of((KeeperKind)0x7fffffff, "org.cella.a", "", KEEPER_FDS_REQUIRED);
        ck_assert_int_eq(keeper_record_check(&rec), -EINVAL);
}
END_TEST

/* A packed group's sets in the keeper: a HOST set and a MEMBER set per app, kept
 * apart by their keys, each returned by TAKE with its kind, group, index and count
 * as they came; one member leaving is one DROP, the rest stays; a member record
 * forged on the wire (not through keeper_hold()) is refused by the keeper itself. */
START_TEST(test_packed_sets)
{
        _cleanup_free_ char *sock = keeper_socket();
        _cleanup_close_ int k = -EBADF, k2 = -EBADF, self = -EBADF;
        _cleanup_close_pair_ int sp[2] = {-EBADF, -EBADF}, ch[2] = {-EBADF, -EBADF},
                                 pp[2] = {-EBADF, -EBADF};
        KeeperSet set = {.fds = {-EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF}};
        KeeperSet *sets = NULL;
        KeeperMsg *reply = calloc(1, sizeof *reply);
        int fds[_KEEPER_FD_MAX], raw[4];
        size_t n = 0;
        unsigned hosts = 0, members = 0;

        REQUIRE_ROOT();
        ck_assert_ptr_nonnull(reply);
        ck_assert_int_gt(keeper_spawn(CELLA_KEEPER_PATH, state_dir, 30), 0);
        k = keeper_connect(sock, NULL);
        ck_assert_int_ge(k, 0);
        k2 = keeper_connect(sock, NULL);
        ck_assert_int_ge(k2, 0);
        self = pidfd_open_(getpid());
        ck_assert_int_ge(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        ck_assert_int_ge(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ch), 0);
        ck_assert_int_ge(pipe2(pp, O_CLOEXEC), 0);

        /* The host: pidfd, ctl, its own stdout and stderr (one pipe will do here), a
         * stats file (any fd: the keeper never reads what it holds). */
        set.rec = record_of(KEEPER_KIND_HOST, "group:pk", "pk", HOST_FDS);
        set.rec.pid = getpid();
        set.rec.generation = 9;
        set.rec.n_members = 2;
        set.fds[KEEPER_FD_PIDFD] = self;
        set.fds[KEEPER_FD_CTL] = sp[0];
        set.fds[KEEPER_FD_STDOUT] = pp[0];
        set.fds[KEEPER_FD_STDERR] = pp[0];
        set.fds[KEEPER_FD_STATS] = pp[0];
        ck_assert_int_eq(keeper_hold(k, &set), 0);
        /* Two members, whose ids are their own keys. */
        for (unsigned i = 0; i < 2; i++) {
                set = (KeeperSet){
                        .fds = {-EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF}};
                set.rec = record_of(KEEPER_KIND_MEMBER, i ? "org.cella.m1" : "org.cella.m0", "pk",
                                    MEMBER_FDS);
                set.rec.pid = getpid();
                set.rec.generation = 9;
                set.rec.member_index = i;
                set.rec.member_run = 5 * i; /* m1 joined (run 5), m0 started with the host */
                set.rec.role = 3;
                set.fds[KEEPER_FD_PIDFD] = self;
                set.fds[KEEPER_FD_CTL] = sp[0];
                set.fds[KEEPER_FD_CHANNEL] = ch[0];
                set.fds[KEEPER_FD_STDOUT] = pp[0];
                ck_assert_int_eq(keeper_hold(k, &set), 0);
        }
        /* A member's role follows it (KEEPER_OP_NOTE, by its id). */
        ck_assert_int_eq(keeper_note(k, "org.cella.m1", 9, 4, 0), 0);
        ck_assert_int_eq(keeper_take(k, &sets, &n), 0);
        ck_assert_uint_eq(n, 3);
        for (size_t i = 0; i < n; i++) {
                const KeeperRecord *r = &sets[i].rec;

                ck_assert_int_eq(keeper_record_check(r), 0);
                if (r->kind == KEEPER_KIND_HOST) {
                        hosts++;
                        ck_assert_str_eq(r->id, "group:pk");
                        ck_assert_uint_eq(r->n_members, 2);
                        ck_assert_uint_eq(r->fds, HOST_FDS);
                        ck_assert_int_ge(sets[i].fds[KEEPER_FD_STATS], 0);
                } else {
                        ck_assert_uint_eq(r->kind, KEEPER_KIND_MEMBER);
                        members++;
                        ck_assert_str_eq(r->group, "pk");
                        ck_assert_uint_eq(r->member_index, strcmp(r->id, "org.cella.m1") == 0);
                        ck_assert_uint_eq(r->member_run, 5 * r->member_index);
                        ck_assert_uint_eq(r->role, r->member_index ? 4 : 3);
                        ck_assert_uint_eq(r->fds, MEMBER_FDS);
                        ck_assert_int_ge(sets[i].fds[KEEPER_FD_CHANNEL], 0);
                }
                keeper_set_done(&sets[i]);
        }
        free(sets);
        sets = NULL;
        ck_assert_uint_eq(hosts, 1);
        ck_assert_uint_eq(members, 2);

        /* One member leaves: one DROP; its host and the other member stay. A DROP of
         * the host's key with another generation leaves it too. */
        ck_assert_int_eq(keeper_drop(k, "org.cella.m0", 9), 0);
        ck_assert_int_eq(keeper_drop(k, "group:pk", 10), 0);
        ck_assert_int_eq(keeper_take(k, &sets, &n), 0);
        ck_assert_uint_eq(n, 2);
        for (size_t i = 0; i < n; i++) {
                ck_assert_str_ne(sets[i].rec.id, "org.cella.m0");
                keeper_set_done(&sets[i]);
        }
        free(sets);
        sets = NULL;

        /* Forged on the wire: a member record that takes its host's key, whose fds
         * are all there; the keeper refuses it (EINVAL) and holds nothing new. */
        memset(reply, 0, sizeof *reply);
        reply->magic = KEEPER_MAGIC;
        reply->op = KEEPER_OP_HOLD;
        reply->rec = record_of(KEEPER_KIND_MEMBER, "group:pk", "pk", MEMBER_FDS);
        reply->rec.pid = getpid();
        raw[0] = self;
        raw[1] = sp[0];
        raw[2] = ch[0];
        raw[3] = pp[0];
        {
                int all[_KEEPER_FD_MAX] = {raw[0], raw[1], -EBADF, raw[2],
                                           raw[3], -EBADF, -EBADF, -EBADF};

                ck_assert_int_eq(keeper_msg_send(k, reply, all), 0);
        }
        ck_assert_int_eq(keeper_msg_recv(k, reply, fds, 5000), 0);
        ck_assert_int_eq(reply->op, KEEPER_OP_ERROR);
        ck_assert_int_eq(reply->error, EINVAL);
        ck_assert_int_eq(keeper_take(k, &sets, &n), 0);
        ck_assert_uint_eq(n, 2);
        for (size_t i = 0; i < n; i++) {
                /* The host's set is still the host's. */
                if (strcmp(sets[i].rec.id, "group:pk") == 0)
                        ck_assert_uint_eq(sets[i].rec.kind, KEEPER_KIND_HOST);
                keeper_set_done(&sets[i]);
        }
        free(sets);
        /* A client that still speaks version 2 ("keer") is hung up on. */
        memset(reply, 0, sizeof *reply);
        reply->magic = 0x6b656572u;
        reply->op = KEEPER_OP_TAKE;
        ck_assert_int_ge(send(k2, reply, sizeof *reply, MSG_NOSIGNAL), 0);
        ck_assert_int_eq(keeper_msg_recv(k2, reply, fds, 5000), -ECONNRESET);
        ck_assert_int_eq(keeper_bye(k), 0);
        free(reply);
}
END_TEST

/* Only root (or the keeper's own uid) may talk to the keeper. */
START_TEST(test_peer_refused)
{
        _cleanup_free_ char *sock = keeper_socket();
        _cleanup_close_ int k = -EBADF;
        pid_t kp, child;
        int status;

        REQUIRE_ROOT();
        kp = keeper_spawn(CELLA_KEEPER_PATH, state_dir, 30);
        ck_assert_int_gt(kp, 0);
        /* Let the socket be reached, so that the peer check is what refuses. */
        {
                _cleanup_free_ char *run = NULL;

                ck_assert_int_ge(asprintf(&run, "%s/run", state_dir), 0);
                ck_assert_int_eq(chmod(state_dir, 0711), 0);
                ck_assert_int_eq(chmod(run, 0711), 0);
                ck_assert_int_eq(chmod(sock, 0666), 0);
        }
        child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                KeeperMsg m = {.magic = KEEPER_MAGIC, .op = KEEPER_OP_BYE};
                int fds[_KEEPER_FD_MAX], fd;
                KeeperMsg *r = malloc(sizeof *r);

                if (!r || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                        _exit(10);
                /* keeper_connect() works (the keeper is root), but the keeper hangs up. */
                fd = keeper_connect(sock, NULL);
                if (fd < 0)
                        _exit(11);
                (void)keeper_msg_send(fd, &m, NULL);
                _exit(keeper_msg_recv(fd, r, fds, 5000) == -ECONNRESET ? 0 : 12);
        }
        ck_assert_int_eq(waitpid(child, &status, 0), child);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
        /* The keeper still runs and serves root. */
        k = keeper_connect(sock, NULL);
        ck_assert_int_ge(k, 0);
        ck_assert_int_eq(keeper_bye(k), 0);
}
END_TEST

/* A leaf open by cgroup_open() (adopted) is no sweep's: not its owner's
 * (cgroup_sweep_owned() with its tag), not a plain one's. */
START_TEST(test_sweep_spares_adopted_leaf)
{
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        Cgroup *cg = NULL, *open = NULL;
        _cleanup_free_ char *name = NULL;

        REQUIRE_ROOT();
        ck_assert_int_ge(cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m), 0);
        /* Tags are checked: letters and digits, a letter first (never a pid). */
        ck_assert_int_eq(cgroup_manager_set_owner(m, "123"), -EINVAL);
        ck_assert_int_eq(cgroup_manager_set_owner(m, "a/b"), -EINVAL);
        ck_assert_int_eq(cgroup_manager_set_owner(m, ""), -EINVAL);
        ck_assert_int_eq(cgroup_manager_set_owner(m, owner_tag), 0);
        ck_assert_int_eq(cgroup_new(m, TEST_LABEL "-sweep", &cg), 0);
        name = strdup(cgroup_name(cg));
        ck_assert_ptr_nonnull(name);
        cg = cgroup_close(cg); /* the leaf stays */
        ck_assert_int_eq(cgroup_open(m, name, &open), 0);
        ck_assert_int_ge(cgroup_sweep(m), 0);
        ck_assert(leaf_exists(m, name));
        ck_assert_int_ge(cgroup_sweep_owned(m, owner_tag, NULL), 0);
        ck_assert(leaf_exists(m, name));
        open = cgroup_close(open);
        ck_assert_int_ge(cgroup_sweep(m), 0);
        ck_assert(leaf_exists(m, name)); /* a tag's leaf is no plain sweep's */
        ck_assert_int_ge(cgroup_sweep_owned(m, owner_tag, NULL), 1);
        ck_assert(!leaf_exists(m, name));
}
END_TEST

/* SIGTERM to a keeper whose last client has just hung up (a cellad that gave up on
 * it, adopt.c keeper_stop()): the apps it holds end and it exits. (It kills them
 * itself, as its stderr says; its exit alone would end them too, by the ctl
 * hangup.) */
START_TEST(test_sigterm_after_hangup)
{
        _cleanup_free_ char *sock = keeper_socket();
        _cleanup_close_ int init_fd = -EBADF, keeper_fd = -EBADF;
        Report rp;
        pid_t d;
        int k;

        REQUIRE_ROOT();
        d = start_daemon(true, 60, &rp);
        init_fd = pidfd_open_(rp.init_pid);
        keeper_fd = pidfd_open_(rp.keeper_pid);
        ck_assert_int_ge(init_fd, 0);
        ck_assert_int_ge(keeper_fd, 0);
        kill_daemon(d);
        k = keeper_connect(sock, NULL);
        ck_assert_int_ge(k, 0);
        close(k);
        ck_assert_int_eq(syscall(SYS_pidfd_send_signal, keeper_fd, SIGTERM, NULL, 0), 0);
        ck_assert_msg(wait_readable(init_fd, 10000), "the keeper did not kill the sandbox");
        ck_assert_msg(wait_readable(keeper_fd, 10000), "the keeper did not exit");
}
END_TEST

/* A keeper whose last client goes while it holds nothing has nothing to wait for:
 * it exits at once, not at the end of its grace. */
START_TEST(test_nothing_held_exits)
{
        _cleanup_free_ char *sock = keeper_socket();
        _cleanup_close_ int keeper_fd = -EBADF;
        pid_t kp;
        int k;

        REQUIRE_ROOT();
        kp = keeper_spawn(CELLA_KEEPER_PATH, state_dir, 600);
        ck_assert_int_gt(kp, 0);
        keeper_fd = pidfd_open_(kp);
        ck_assert_int_ge(keeper_fd, 0);
        k = keeper_connect(sock, NULL);
        ck_assert_int_ge(k, 0);
        ck_assert(!wait_readable(keeper_fd, 100)); /* connected: it stays */
        close(k);
        ck_assert_msg(wait_readable(keeper_fd, 10000), "the keeper waited for its grace");
        ck_assert_int_eq(access(sock, F_OK), -1); /* and took its socket with it */
}
END_TEST

int main(void)
{
        Suite *suite = suite_create("keeper");
        TCase *tc = tcase_create("keeper");
        SRunner *sr;

        if (skip_init() < 0)
                return EXIT_FAILURE;
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_adopt_after_sigkill);
        tcase_add_test(tc, test_adopt_as_parent);
        tcase_add_test(tc, test_exit_while_no_daemon);
        tcase_add_test(tc, test_grace_kill);
        tcase_add_test(tc, test_unheld_sandbox_dies);
        tcase_add_test(tc, test_incomplete_refused);
        tcase_add_test(tc, test_note_and_version);
        tcase_add_test(tc, test_record_kinds);
        tcase_add_test(tc, test_packed_sets);
        tcase_add_test(tc, test_peer_refused);
        tcase_add_test(tc, test_sweep_spares_adopted_leaf);
        tcase_add_test(tc, test_sigterm_after_hangup);
        tcase_add_test(tc, test_nothing_held_exits);
        suite_add_tcase(suite, tc);
        sr = srunner_create(suite);
        return skip_run(sr);
}
