/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella-oci's runtime pieces (src/oci/state.c, cgroups.c): container ids, state.json
 * written and read back, host ids taken once each, the status of a real child, and
 * the cgroup path of linux.cgroupsPath in both forms (systemd's slice nesting cannot
 * be seen live on a host without systemd: it is checked here).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/macro.h"
#include "oci/cgroups.h"
#include "oci/state.h"
#include "test-util.h"

START_TEST(test_ids)
{
        const char *good[] = {"a", "Z9", "abc_def.g-h",
                              "0cb5a6076475ef99ce88fa65e2550ba60bdbafb2677155aa277a7fe0a84c1bed"};
        const char *bad[] = {"",   ".",   "..",  "../x", "a/b", ".a", "-a",
                             "_a", "a b", "a\n", "é",    "a:b", NULL};
        char longest[OCI_ID_MAX + 2];

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                ck_assert_msg(oci_id_valid(good[i]), "%s", good[i]);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(!oci_id_valid(bad[i]), "%s", bad[i] ? bad[i] : "NULL");
        memset(longest, 'a', sizeof longest);
        longest[OCI_ID_MAX] = 0;
        ck_assert(oci_id_valid(longest));
        longest[OCI_ID_MAX] = 'a';
        longest[OCI_ID_MAX + 1] = 0;
        ck_assert(!oci_id_valid(longest));
}
END_TEST

START_TEST(test_cgroup_paths)
{
        static const struct {
                const char *in, *id;
                bool systemd;
                const char *path, *unit;
        } ok[] = {
                {NULL, "c1", false, "/cella-oci/c1", NULL},
                {"", "c1", false, "/cella-oci/c1", NULL},
                {"/libpod_parent/libpod-abc", "c1", false, "/libpod_parent/libpod-abc", NULL},
                {"rel/x", "c1", false, "rel/x", NULL},
                {NULL, "c1", true, "/system.slice/cella-oci-c1.scope", "cella-oci-c1.scope"},
                {"machine.slice:libpod:abc", "c1", true, "/machine.slice/libpod-abc.scope",
                 "libpod-abc.scope"},
                {"a-b-c.slice:p:n", "c1", true, "/a.slice/a-b.slice/a-b-c.slice/p-n.scope",
                 "p-n.scope"},
                {":crio:x1", "c1", true, "/system.slice/crio-x1.scope", "crio-x1.scope"},
                {"user.slice::n", "c1", true, "/user.slice/n.scope", "n.scope"},
                {"-.slice:p:n", "c1", true, "/p-n.scope", "p-n.scope"},
        };
        static const char *const bad[] = {"a:b",           "x.notslice:p:n",   "a--b.slice:p:n",
                                          "-a.slice:p:n",  "a.slice:p:",       "a.slice:p:n:m",
                                          "a.slice:p/q:n", "a.slice:p:n/../x", ".slice:p:n"};
        char err[256];

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_free_ char *p = NULL, *u = NULL;

                ck_assert_msg(oci_cgroup_path(ok[i].in, ok[i].id, ok[i].systemd, &p, &u, err,
                                              sizeof err) == 0,
                              "%s: %s", ok[i].in ? ok[i].in : "NULL", err);
                ck_assert_str_eq(p, ok[i].path);
                if (ok[i].unit)
                        ck_assert_str_eq(u, ok[i].unit);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *p = NULL, *u = NULL;

                err[0] = 0;
                ck_assert_msg(oci_cgroup_path(bad[i], "c1", true, &p, &u, err, sizeof err) ==
                                      -EINVAL,
                              "%s", bad[i]);
                ck_assert_msg(strstr(err, "linux.cgroupsPath"), "%s: %s", bad[i], err);
        }
}
END_TEST

static char *tmpdir(void)
{
        char *d = strdup("/tmp/cella-oci-state-XXXXXX");

        ck_assert_ptr_nonnull(mkdtemp(d));
        return d;
}

START_TEST(test_state_roundtrip_and_status)
{
        _cleanup_free_ char *root = tmpdir();
        _cleanup_close_ int rootfd = -EBADF, dirfd = -EBADF, lockfd = -EBADF;
        char *keys[] = {"k", NULL}, *values[] = {"v\"\n", NULL};
        OciState s = {}, t = {};
        _cleanup_free_ char *j = NULL;
        int pidfd;
        pid_t child;

        rootfd = oci_root_open(root, false);
        ck_assert_int_ge(rootfd, 0);
        ck_assert_int_eq(oci_container_open(rootfd, "../x", true, &dirfd, &lockfd), -EINVAL);
        ck_assert_int_eq(oci_container_open(rootfd, "c1", false, &dirfd, &lockfd), -ENOENT);
        ck_assert_int_eq(oci_container_open(rootfd, "c1", true, &dirfd, &lockfd), 0);

        child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                pause();
                _exit(0);
        }
        s = (OciState){.id = "c1",
                       .bundle = "/b",
                       .rootfs = "/b/rootfs",
                       .created = "t",
                       .pid = child,
                       .cgroup_path = "/x/c1",
                       .host_uid = OCI_HOST_ID_BASE + 3,
                       .policy = "cella",
                       .ns_flags = 42,
                       .annotation_keys = keys,
                       .annotation_values = values,
                       .n_annotations = 1};
        ck_assert_int_eq(oci_proc_start_time(child, &s.pid_start), 0);
        ck_assert_int_eq(oci_state_write(dirfd, &s), 0);
        ck_assert_int_eq(oci_state_read(dirfd, &t), 0);
        ck_assert_str_eq(t.id, "c1");
        ck_assert_str_eq(t.cgroup_path, "/x/c1");
        ck_assert_int_eq(t.pid, child);
        ck_assert_uint_eq(t.pid_start, s.pid_start);
        ck_assert_uint_eq(t.host_uid, OCI_HOST_ID_BASE + 3);
        ck_assert_int_eq(t.ns_flags, 42);
        ck_assert_str_eq(t.annotation_values[0], "v\"\n");

        /* Status: fifo present and init alive: created; alive: running; else stopped. */
        ck_assert_int_eq(mkfifoat(dirfd, "exec.fifo", 0622), 0);
        ck_assert_int_eq(oci_state_status(dirfd, &t, NULL, NULL, NULL), OCI_STATUS_CREATED);
        ck_assert_int_eq(unlinkat(dirfd, "exec.fifo", 0), 0);
        ck_assert_int_eq(oci_state_status(dirfd, &t, NULL, NULL, &pidfd), OCI_STATUS_RUNNING);
        ck_assert_int_ge(pidfd, 0);
        close(pidfd);
        /* Another process's start time: never taken for the init. */
        t.pid_start++;
        ck_assert_int_eq(oci_state_status(dirfd, &t, NULL, NULL, NULL), OCI_STATUS_STOPPED);
        t.pid_start--;
        /* A zombie is stopped. */
        ck_assert_int_eq(kill(child, SIGKILL), 0);
        {
                siginfo_t si;

                ck_assert_int_eq(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0);
        }
        ck_assert_int_eq(oci_state_status(dirfd, &t, NULL, NULL, NULL), OCI_STATUS_STOPPED);
        ck_assert_int_eq(waitpid(child, NULL, 0), child);
        ck_assert_int_eq(oci_state_status(dirfd, &t, NULL, NULL, NULL), OCI_STATUS_STOPPED);

        j = oci_state_to_json(&t, OCI_STATUS_STOPPED, false);
        ck_assert_ptr_nonnull(strstr(j, "\"status\":\"stopped\""));
        ck_assert_ptr_nonnull(strstr(j, "\"pid\":0"));

        /* A state.json that is not ours is refused, not trusted. */
        put_file(root, "c1/state.json", "{\"id\": 3}", 0600);
        oci_state_done(&t);
        ck_assert_int_eq(oci_state_read(dirfd, &t), -EBADMSG);
        put_file(root, "c1/state.json",
                 "{\"id\":\"c1\",\"bundle\":\"/b\",\"pid\":-4,"
                 "\"pidStartTime\":1,\"hostUid\":0}",
                 0600);
        ck_assert_int_eq(oci_state_read(dirfd, &t), -EBADMSG);

        ck_assert_int_eq(oci_container_remove(rootfd, "c1"), 0);
        ck_assert_int_eq(faccessat(rootfd, "c1", F_OK, 0), -1);
        rm_tree(root);
}
END_TEST

START_TEST(test_host_ids)
{
        _cleanup_free_ char *root = tmpdir();
        _cleanup_close_ int rootfd = oci_root_open(root, false);
        uid_t a, b, c;

        ck_assert_int_ge(rootfd, 0);
        ck_assert_int_eq(oci_host_id_take(rootfd, "one", &a), 0);
        ck_assert_int_eq(oci_host_id_take(rootfd, "one", &b), 0);
        ck_assert_int_eq(oci_host_id_take(rootfd, "two", &c), 0);
        /* Never one id twice, every one in the range. */
        ck_assert_uint_ne(a, b);
        ck_assert_uint_ne(a, c);
        ck_assert_uint_ne(b, c);
        {
                const uid_t u[] = {a, b, c};

                for (size_t i = 0; i < ELEMENTSOF(u); i++)
                        ck_assert(u[i] >= OCI_HOST_ID_BASE &&
                                  u[i] - OCI_HOST_ID_BASE < OCI_HOST_ID_COUNT);
        }
        /* Released only by its own container. */
        ck_assert_int_eq(oci_host_id_release(rootfd, "two", a), -EPERM);
        ck_assert_int_eq(oci_host_id_release(rootfd, "one", a), 0);
        ck_assert_int_eq(oci_host_id_release(rootfd, "one", a), 0);
        ck_assert_int_eq(oci_host_id_release(rootfd, "one", 1000), -EINVAL);
        ck_assert_int_eq(oci_host_id_take(rootfd, "one", &c), 0);
        ck_assert_uint_eq(c, a);
        rm_tree(root);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("oci-state");
        TCase *tc = tcase_create("oci-state");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_ids);
        tcase_add_test(tc, test_cgroup_paths);
        tcase_add_test(tc, test_state_roundtrip_and_status);
        tcase_add_test(tc, test_host_ids);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
