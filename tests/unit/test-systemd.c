/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cellad under systemd, the parts that need no systemd (src/daemon/systemd.c): the
 * decision to put the apps in a scope, from a made-up environment; the scope's name;
 * the fd store's names; the checks of a stored fd, on real sockets (stale, foreign,
 * of the wrong kind); and daemon_fds_take() on fds 3.. as systemd passes them, in a
 * child of its own (the fds it needs are check's own otherwise). The run under a
 * real systemd is tests/integration/test_systemd.py.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "base/macro.h"
#include "daemon/daemon-internal.h"
#include "keeper/keeper.h"

static DaemonSystemdEnv env_ok(void)
{
        return (DaemonSystemdEnv){
                .booted = 1,
                .invocation_id = "9a66f4237746442f9c662016017a4a1a",
                .self_cgroup = "/system.slice/cellad.service",
                .mode = CGROUP_MODE_HYBRID,
        };
}

START_TEST(test_decide)
{
        DaemonSystemdEnv e = env_ok();
        const char *why = "x";

        ck_assert_int_eq(daemon_scope_decide(&e, &why), 1);
        ck_assert_ptr_null(why);
        /* Its supervisor/ leaf (a re-exec), a service in another slice, pure v2. */
        e.self_cgroup = "/system.slice/cellad.service/supervisor";
        ck_assert_int_eq(daemon_scope_decide(&e, &why), 1);
        e.self_cgroup = "/cella.slice/cella-x.slice/cellad@a.service";
        e.mode = CGROUP_MODE_V2;
        ck_assert_int_eq(daemon_scope_decide(&e, &why), 1);

        e = env_ok();
        e.booted = 0;
        ck_assert_int_eq(daemon_scope_decide(&e, &why), 0);
        ck_assert_ptr_nonnull(strstr(why, "not booted with systemd"));
        e = env_ok();
        e.invocation_id = NULL;
        ck_assert_int_eq(daemon_scope_decide(&e, &why), 0);
        ck_assert_ptr_nonnull(strstr(why, "INVOCATION_ID"));
        e.invocation_id = "";
        ck_assert_int_eq(daemon_scope_decide(&e, &why), 0);
        /* Not a service's cgroup: a login session's scope (sudo cellad from a
         * shell), a bare cellad's base, odd names. */
        {
                static const char *const bad[] = {
                        "/user.slice/user-0.slice/session-3.scope",
                        "/cellad-d803i1a2b/supervisor",
                        "/",
                        "/.service",
                        "/system.slice/cellad.servicex",
                        "/system.slice/cellad.service/other",
                        "relative/cellad.service",
                };

                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        e = env_ok();
                        e.self_cgroup = bad[i];
                        ck_assert_msg(daemon_scope_decide(&e, &why) == 0, "%s", bad[i]);
                        ck_assert_ptr_nonnull(why);
                }
        }
        e = env_ok();
        e.self_cgroup = NULL;
        ck_assert_int_eq(daemon_scope_decide(&e, &why), 0);
        /* v1: the apps would have no cgroup2 leaf, where systemd tracks them. */
        e = env_ok();
        e.mode = CGROUP_MODE_V1;
        ck_assert_int_eq(daemon_scope_decide(&e, &why), 0);
        ck_assert_ptr_nonnull(strstr(why, "cgroup mode v1"));
}
END_TEST

START_TEST(test_scope_name)
{
        char buf[64], small[10];

        ck_assert_int_eq(daemon_scope_name("d803i1a2b", buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "cella-apps-d803i1a2b.scope");
        ck_assert_int_eq(daemon_scope_name("r0123456789abcdef", buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "cella-apps-r0123456789abcdef.scope");
        ck_assert_int_eq(daemon_scope_name("d803i1a2b", small, sizeof small), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_fdname_kind)
{
        ck_assert_int_eq(daemon_fdname_kind("cellad.socket"), DAEMON_FD_SOCKET);
        ck_assert_int_eq(daemon_fdname_kind("unknown"), DAEMON_FD_SOCKET);
        ck_assert_int_eq(daemon_fdname_kind(""), DAEMON_FD_SOCKET);
        ck_assert_int_eq(daemon_fdname_kind(NULL), DAEMON_FD_SOCKET);
        ck_assert_int_eq(daemon_fdname_kind("cellad-listen"), DAEMON_FD_LISTEN);
        ck_assert_int_eq(daemon_fdname_kind("cellad-keeper"), DAEMON_FD_KEEPER);
        ck_assert_int_eq(daemon_fdname_kind("cellad-keeper2"), DAEMON_FD_UNKNOWN);
        ck_assert_int_eq(daemon_fdname_kind("stored"), DAEMON_FD_UNKNOWN);
        ck_assert_int_eq(daemon_fdname_kind("cellad-"), DAEMON_FD_UNKNOWN);
        ck_assert_int_eq(daemon_fdname_kind("cellad-listen\n"), DAEMON_FD_UNKNOWN);
}
END_TEST

/* A socket of type bound at path (listening if listen_too); -1 on failure. */
static int bound(int type, const char *path, bool listen_too)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        (void)unlink(path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        if (listen_too)
                ck_assert_int_eq(listen(fd, 8), 0);
        return fd;
}

static int connected(int type, const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        return fd;
}

static char dir[64];

static void make_dir(void)
{
        snprintf(dir, sizeof dir, "/tmp/cella-test-systemd-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_check_listen)
{
        char path[128], other[128], tmp[160];
        const char *why;
        int fd, fd2, pair[2];

        make_dir();
        snprintf(path, sizeof path, "%s/cellad.sock", dir);
        snprintf(other, sizeof other, "%s/other.sock", dir);
        fd = bound(SOCK_STREAM, path, true);
        if (geteuid() == 0) {
                ck_assert_int_eq(daemon_fdstore_check_listen(fd, path, &why), 0);
                ck_assert_ptr_null(why);
        }
        /* Bound for another path. */
        ck_assert_int_eq(daemon_fdstore_check_listen(fd, other, &why), -EINVAL);
        ck_assert_str_eq(why, "bound for another path");
        /* A prefix is not the path ("<path>.sock" is not "<path>"), but daemon_bind()'s
         * "<path>.N.tmp" is (below). */
        snprintf(tmp, sizeof tmp, "%s/cellad", dir);
        ck_assert_int_eq(daemon_fdstore_check_listen(fd, tmp, &why), -EINVAL);
        ck_assert_str_eq(why, "bound for another path");
        /* Its file gone: stale (a new socket is bound instead). */
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(daemon_fdstore_check_listen(fd, path, &why), -ESTALE);
        ck_assert_str_eq(why, "its file is gone or replaced");
        /* ...or replaced by a regular file. */
        ck_assert_int_eq(close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
        ck_assert_int_eq(daemon_fdstore_check_listen(fd, path, &why), -ESTALE);
        ck_assert_int_eq(unlink(path), 0);
        safe_close(fd);
        /* Bound under the temporary name, renamed into place. */
        snprintf(tmp, sizeof tmp, "%s.123.tmp", path);
        fd = bound(SOCK_STREAM, tmp, true);
        ck_assert_int_eq(rename(tmp, path), 0);
        if (geteuid() == 0)
                ck_assert_int_eq(daemon_fdstore_check_listen(fd, path, &why), 0);
        safe_close(fd);
        /* Not listening; not a stream; a socketpair; not a socket at all. */
        fd = bound(SOCK_STREAM, path, false);
        ck_assert_int_eq(daemon_fdstore_check_listen(fd, path, &why), -EINVAL);
        ck_assert_str_eq(why, "not a listening Unix stream socket");
        safe_close(fd);
        fd = bound(SOCK_DGRAM, path, false);
        ck_assert_int_eq(daemon_fdstore_check_listen(fd, path, &why), -EINVAL);
        safe_close(fd);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        ck_assert_int_eq(daemon_fdstore_check_listen(pair[0], path, &why), -EINVAL);
        safe_close(pair[0]);
        safe_close(pair[1]);
        fd2 = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_eq(daemon_fdstore_check_listen(fd2, path, &why), -EINVAL);
        safe_close(fd2);
        remove_dir();
}
END_TEST

START_TEST(test_check_keeper)
{
        char path[128], other[128];
        const char *why;
        int lis, lis2, c, s, c2;

        make_dir();
        snprintf(path, sizeof path, "%s/keeper.sock", dir);
        snprintf(other, sizeof other, "%s/other.sock", dir);
        lis = bound(SOCK_SEQPACKET, path, true);
        lis2 = bound(SOCK_SEQPACKET, other, true);
        c = connected(SOCK_SEQPACKET, path);
        s = accept4(lis, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(s, 0);
        ck_assert_int_eq(daemon_fdstore_check_keeper(c, path, &why), 0);
        ck_assert_ptr_null(why);
        /* A connection to another socket. */
        c2 = connected(SOCK_SEQPACKET, other);
        ck_assert_int_eq(daemon_fdstore_check_keeper(c2, path, &why), -EINVAL);
        ck_assert_str_eq(why, "not connected to the keeper's socket");
        safe_close(c2);
        /* A reply nobody read: the next request would take it for its own. */
        ck_assert_int_eq(write(s, "x", 1), 1);
        ck_assert_int_eq(daemon_fdstore_check_keeper(c, path, &why), -ESTALE);
        {
                char b;

                ck_assert_int_eq(read(c, &b, 1), 1);
        }
        ck_assert_int_eq(daemon_fdstore_check_keeper(c, path, &why), 0);
        /* The keeper gone (its end closed): stale. */
        safe_close(s);
        ck_assert_int_eq(daemon_fdstore_check_keeper(c, path, &why), -ESTALE);
        ck_assert_str_eq(why, "the keeper it reached is gone");
        safe_close(c);
        /* A listener, a stream connection, an unconnected socket: not the kind. */
        ck_assert_int_eq(daemon_fdstore_check_keeper(lis, path, &why), -EINVAL);
        safe_close(lis);
        safe_close(lis2);
        lis = bound(SOCK_STREAM, path, true);
        c = connected(SOCK_STREAM, path);
        ck_assert_int_eq(daemon_fdstore_check_keeper(c, path, &why), -EINVAL);
        ck_assert_str_eq(why, "not a connected Unix seqpacket socket");
        safe_close(c);
        safe_close(lis);
        c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(daemon_fdstore_check_keeper(c, path, &why), -EINVAL);
        safe_close(c);
        remove_dir();
}
END_TEST

/*
 * daemon_fds_take() on what systemd would pass, in a child (fds 3.. are check's own
 * in the test's process): fd 3 a connection to the keeper ("cellad-keeper"), 4 the
 * socket unit's socket ("cellad.socket"), 5 a foreign entry ("cellad-bogus"), 6 a
 * stale listening socket ("cellad-listen", its file gone). The child exits 0 when
 * every expectation holds, else with the number of the one that failed.
 */
static int take_child(void)
{
        char kpath[256], spath[128], lpath[256], state[96];
        int keeper_l, kc, ks, sock, bogus, stale;
        Daemon d = {.fdstore_listen = -EBADF, .fdstore_keeper = -EBADF, .listen_fd = -EBADF};
        char buf[16];

        snprintf(state, sizeof state, "%s/state", dir);
        snprintf(kpath, sizeof kpath, "%s/%s", state, KEEPER_SOCKET);
        snprintf(spath, sizeof spath, "%s/unit.sock", dir);
        snprintf(lpath, sizeof lpath, "%s/cellad.sock", state);
        {
                char run[160];

                snprintf(run, sizeof run, "%s/run", state);
                if (mkdir(state, 0700) < 0 || mkdir(run, 0700) < 0)
                        return 10;
        }
        /* 3..6 held, so that what is made below lands above them. */
        for (int fd = 3; fd <= 6; fd++)
                if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDONLY) != fd)
                        return 14;
        keeper_l = bound(SOCK_SEQPACKET, kpath, true);
        kc = connected(SOCK_SEQPACKET, kpath);
        ks = accept4(keeper_l, NULL, NULL, SOCK_CLOEXEC);
        sock = bound(SOCK_STREAM, spath, true);
        bogus = open("/dev/null", O_RDONLY | O_CLOEXEC);
        stale = bound(SOCK_STREAM, lpath, true);
        (void)unlink(lpath);
        if (ks < 0 || bogus < 0)
                return 11;
        /* Out of the way of 3..6 first, then into place. */
        {
                int src[4] = {kc, sock, bogus, stale}, hi[4];

                for (int i = 0; i < 4; i++)
                        if ((hi[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 100)) < 0)
                                return 12;
                for (int i = 0; i < 4; i++)
                        if (dup2(hi[i], 3 + i) < 0)
                                return 13;
        }
        snprintf(buf, sizeof buf, "%d", (int)getpid());
        setenv("LISTEN_PID", buf, 1);
        setenv("LISTEN_FDS", "4", 1);
        setenv("LISTEN_FDNAMES", "cellad-keeper:cellad.socket:cellad-bogus:cellad-listen", 1);
        unsetenv("NOTIFY_SOCKET"); /* no FDSTOREREMOVE= goes anywhere */
        d.state_dir = state;
        d.socket_path = lpath;
        d.o.listen_fd = -1;
        if (daemon_fds_take(&d) != 1 || d.n_listen_fds != 1)
                return 1;
        /* The socket unit's socket is fd 3 now, the only one LISTEN_FDS names. */
        if (sd_is_socket_unix(3, SOCK_STREAM, 1, spath, 0) <= 0)
                return 2;
        if (!getenv("LISTEN_FDS") || strcmp(getenv("LISTEN_FDS"), "1") != 0 ||
            !getenv("LISTEN_FDNAMES") || strcmp(getenv("LISTEN_FDNAMES"), "cellad.socket") != 0)
                return 3;
        /* The keeper's connection taken, checked; the foreign and the stale one
         * closed, not used; 4.. free. */
        if (d.fdstore_keeper < 7 ||
            daemon_fdstore_check_keeper(d.fdstore_keeper, kpath, &(const char *){NULL}) < 0)
                return 4;
        if (d.fdstore_listen >= 0)
                return 5;
        for (int fd = 4; fd <= 6; fd++)
                if (fcntl(fd, F_GETFD) >= 0)
                        return 6;
        /* Nothing passed: nothing taken, nothing changed. */
        unsetenv("LISTEN_FDS");
        d.fdstore_keeper = safe_close(d.fdstore_keeper);
        if (daemon_fds_take(&d) != 0 || d.fdstore_keeper >= 0)
                return 7;
        return 0;
}

START_TEST(test_fds_take)
{
        pid_t pid;
        int status;

        make_dir();
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(take_child());
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d", status);
        remove_dir();
}
END_TEST

int main(void)
{
        Suite *s = suite_create("systemd");
        TCase *tc = tcase_create("systemd");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_decide);
        tcase_add_test(tc, test_scope_name);
        tcase_add_test(tc, test_fdname_kind);
        tcase_add_test(tc, test_check_listen);
        tcase_add_test(tc, test_check_keeper);
        tcase_add_test(tc, test_fds_take);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
