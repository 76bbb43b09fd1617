/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The OCI jail (SandboxSpec.rootfs, src/sandbox/rootfs.c) in real sandboxes: a
 * busybox root file system made in a temporary directory, an OCI-like mount list
 * (podman's: proc, a tmpfs /dev, devpts, mqueue, a read-only sysfs, binds, a cgroup
 * mount, a tmpfs with options), masked and read-only paths, devices, sysctls, a
 * read-only root; each checked from inside by the app's own output (a busybox shell
 * script), and the escapes through the root's symlinks that must fail. The app runs
 * with cella's defaults (SANDBOX_UID, no capability, the builtin seccomp filter).
 * Needs root and /bin/busybox (busybox-static); otherwise the tests are skipped
 * (exit 77).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"
#include "skip.h"
#include "test-util.h"

#define TEST_HOST_UID ((uid_t)0x7ffe0100u)
#define OUTPUT_MAX    (256 * 1024)
#define BUSYBOX       "/bin/busybox"

static char root[] = "/tmp/test-rootfs-XXXXXX";      /* the root file system */
static char host[] = "/tmp/test-rootfs-host-XXXXXX"; /* bind sources, escape probes */
static SeccompProgram *seccomp_prog;
static char *const test_envp[] = {"PATH=/bin", "HOME=/", NULL};

static const char *const applets[] = {"sh",   "cat",      "ls",  "echo", "head", "wc",  "touch",
                                      "stat", "readlink", "pwd", "grep", "id",   "tty", "stty"};

static void setup(void)
{
        char path[PATH_MAX];

        if (geteuid() != 0 || access(BUSYBOX, X_OK) < 0)
                return;
        strcpy(root + strlen(root) - 6, "XXXXXX");
        strcpy(host + strlen(host) - 6, "XXXXXX");
        if (!mkdtemp(root) || !mkdtemp(host) || chmod(root, 0755) < 0 || chmod(host, 0755) < 0)
                abort();
        for (const char *d = "bin\0proc\0sys\0dev\0etc\0tmp\0mnt\0"; *d; d += strlen(d) + 1) {
                snprintf(path, sizeof path, "%s/%s", root, d);
                if (mkdir(path, 0755) < 0)
                        abort();
        }
        snprintf(path, sizeof path, "cp %s %s/bin/busybox", BUSYBOX, root);
        if (system(path) != 0)
                abort();
        for (size_t i = 0; i < ELEMENTSOF(applets); i++) {
                snprintf(path, sizeof path, "%s/bin/%s", root, applets[i]);
                if (symlink("busybox", path) < 0)
                        abort();
        }
        put_file(root, "etc/secret", "root's secret\n", 0644);
        put_file(host, "file", "hello from a bound file\n", 0644);
        snprintf(path, sizeof path, "%s/dir", host);
        if (mkdir(path, 0755) < 0)
                abort();
        put_file(host, "dir/inner", "inner\n", 0644);
        if (seccomp_program_builtin(&(SeccompOptions){}, &seccomp_prog) < 0)
                abort();
}

static void teardown(void)
{
        if (geteuid() != 0 || access(BUSYBOX, X_OK) < 0)
                return;
        rm_tree(root);
        rm_tree(host);
        seccomp_prog = seccomp_program_free(seccomp_prog);
}

#define REQUIRE()                                                                                  \
        do {                                                                                       \
                if (geteuid() != 0)                                                                \
                        SKIP_TEST("sandbox_spawn needs root");                                     \
                if (access(BUSYBOX, X_OK) < 0)                                                     \
                        SKIP_TEST("no %s (busybox-static)", BUSYBOX);                              \
        } while (0)

typedef struct Run {
        SandboxSpec spec;
        SandboxRootfs rootfs;
        char *argv[4];
        int out[2];
} Run;

/* r runs `sh -c script` in the root with mounts (n of them). */
static void run_init(Run *r, const char *script, const SandboxMount *mounts, size_t n)
{
        *r = (Run){};
        r->argv[0] = "sh";
        r->argv[1] = "-c";
        r->argv[2] = (char *)script;
        ck_assert_int_eq(pipe2(r->out, O_CLOEXEC), 0);
        r->rootfs = (SandboxRootfs){.path = root, .mounts = mounts, .n_mounts = n};
        r->spec = (SandboxSpec){
                .hostname = "t-rootfs",
                .host_uid = TEST_HOST_UID,
                .host_gid = TEST_HOST_UID,
                .exec_path = "/bin/sh",
                .argv = r->argv,
                .envp = test_envp,
                .seccomp = seccomp_prog,
                .stdio = {-1, r->out[1], r->out[1]},
                .channel_fd = -1,
                .rootfs = &r->rootfs,
        };
}

/* Spawns r, waits for the app's end; returns its output (free it) and checks exit 0. */
static char *run_ok(Run *r)
{
        SandboxError err = {};
        Sandbox *s = NULL;
        SandboxExit e = {};
        char *out = NULL;
        size_t n = 0;
        int k = sandbox_spawn(&r->spec, &s, &err);

        r->out[1] = safe_close(r->out[1]);
        ck_assert_msg(k == 0, "sandbox_spawn: %s at step %s: %s", strerror(-k),
                      sandbox_step_to_string(err.step), err.detail);
        ck_assert_int_eq(read_full_fd(r->out[0], OUTPUT_MAX, &out, &n), 0);
        ck_assert_int_eq(sandbox_wait(s, &e), 0);
        sandbox_free(s);
        r->out[0] = safe_close(r->out[0]);
        ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d, output:\n%s", e.code,
                      e.status, out);
        return out;
}

static void expect_fail(Run *r, int expected, SandboxStep step, const char *detail_has)
{
        SandboxError err = {};
        Sandbox *s = NULL;
        int k = sandbox_spawn(&r->spec, &s, &err);

        r->out[0] = safe_close(r->out[0]);
        r->out[1] = safe_close(r->out[1]);
        ck_assert_msg(k == expected, "sandbox_spawn gave %d (%s at %s: %s), expected %d", k,
                      strerror(-k), sandbox_step_to_string(err.step), err.detail, expected);
        ck_assert_ptr_null(s);
        ck_assert_msg(err.step == step, "step %s, expected %s (%s)",
                      sandbox_step_to_string(err.step), sandbox_step_to_string(step), err.detail);
        ck_assert_msg(strstr(err.detail, detail_has), "detail \"%s\" does not name %s", err.detail,
                      detail_has);
        errno = 0;
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
        ck_assert_int_eq(errno, ECHILD);
}

/* The options of the last line of /proc/self/mounts output out whose mount point is
 * target and type is type, in buf; fails the test if there is none. */
static void mount_opts(const char *out, const char *target, const char *type, char *buf,
                       size_t size)
{
        bool found = false;

        for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                char src[256], mp[256], fstype[64], opts[512];

                if (sscanf(l, "%255s %255s %63s %511s", src, mp, fstype, opts) != 4)
                        continue;
                if (strcmp(mp, target) == 0 && (!type || strcmp(fstype, type) == 0)) {
                        snprintf(buf, size, ",%s,", opts);
                        found = true;
                }
        }
        ck_assert_msg(found, "no %s mount on %s in:\n%s", type ?: "", target, out);
}

/* Whether the comma-framed option list opts has opt. */
static bool has_opt(const char *opts, const char *opt)
{
        char want[64];

        snprintf(want, sizeof want, ",%s,", opt);
        return strstr(opts, want) != NULL;
}

static void assert_opts(const char *out, const char *target, const char *type,
                        const char *const *want)
{
        char opts[600];

        mount_opts(out, target, type, opts, sizeof opts);
        for (size_t i = 0; want[i]; i++)
                ck_assert_msg(has_opt(opts, want[i]), "%s on %s: no %s in %s", type ?: "mount",
                              target, want[i], opts);
}

static char *read_sysctl(const char *path)
{
        char *buf = NULL;
        size_t n = 0;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(read_full_fd(fd, 4096, &buf, &n), 0);
        return buf;
}

/* podman's mounts (/tmp/rt-config.json of the project's notes), a bound file and
 * directory, a tmpfs with options. */
static char bind_file[PATH_MAX], bind_dir[PATH_MAX];
static const SandboxMount podman_mounts[] = {
        {.type = "proc",
         .source = "proc",
         .target = "/proc",
         .flags = MS_NOSUID | MS_NOEXEC | MS_NODEV},
        {.type = "tmpfs",
         .source = "tmpfs",
         .target = "/dev",
         .flags = MS_NOSUID | MS_NOEXEC | MS_STRICTATIME,
         .data = "mode=755,size=65536k"},
        {.type = "sysfs",
         .source = "sysfs",
         .target = "/sys",
         .flags = MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY},
        {.type = "devpts",
         .source = "devpts",
         .target = "/dev/pts",
         .flags = MS_NOSUID | MS_NOEXEC,
         .data = "newinstance,ptmxmode=0666,mode=0620,gid=5"},
        {.type = "mqueue",
         .source = "mqueue",
         .target = "/dev/mqueue",
         .flags = MS_NOSUID | MS_NOEXEC | MS_NODEV},
        {.type = "bind",
         .source = bind_file,
         .target = "/etc/hosts.bound",
         .flags = MS_BIND | MS_RDONLY,
         .propagation = MS_PRIVATE},
        {.type = "bind",
         .source = bind_dir,
         .target = "/mnt/deep/dir",
         .flags = MS_BIND | MS_REC | MS_NOSUID | MS_NODEV,
         .propagation = MS_PRIVATE | MS_REC},
        {.type = "tmpfs",
         .source = "tmpfs",
         .target = "/run",
         .flags = MS_NOSUID | MS_NODEV,
         .data = "mode=1733,size=1m,uid=1000,gid=1000"},
        {.type = "cgroup",
         .source = "cgroup",
         .target = "/sys/fs/cgroup",
         .flags = MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY},
};

static const char mounts_script[] =
        "cat /proc/self/mounts; echo ---\n"
        "cat /etc/hosts.bound; cat /mnt/deep/dir/inner\n"
        "echo x > /dev/null && echo devnull-ok\n"
        "echo zero=$(head -c 4096 /dev/zero | wc -c)\n"
        "head -c 16 /dev/urandom | wc -c | grep -q 16 && echo urandom-ok\n"
        "echo ptmx=$(readlink /dev/ptmx) fd=$(readlink /dev/fd) stdout=$(readlink /dev/stdout)\n"
        "echo mydev=$(stat -c '%u:%g %a %t,%T' /dev/mydev)\n"
        "echo y > /dev/mydev && echo mydev-ok\n"
        "echo shmmax=$(cat /proc/sys/kernel/shmmax) fwd=$(cat /proc/sys/net/ipv4/ip_forward) "
        "ping=$(cat /proc/sys/net/ipv4/ping_group_range)\n"
        "touch /newfile 2>/dev/null && echo root-writable || echo root-ro\n"
        "echo y > /run/f && echo run-writable\n"
        "echo run=$(stat -c '%a %u:%g' /run)\n"
        "echo secret=$(cat /etc/secret | wc -c) keys=$(cat /proc/keys | wc -c)\n"
        "echo acpi=$(ls -A /proc/acpi 2>/dev/null | wc -l)\n"
        "echo z > /proc/sys/kernel/shmmax 2>/dev/null && echo procsys-writable || "
        "echo procsys-ro\n"
        "ls /sys/fs/cgroup | grep -q . && echo cgroup-listed\n"
        "grep -v ':/$' /proc/self/cgroup || echo cgroup-ns-root\n"
        "echo pwd=$(pwd)\n";

START_TEST(test_mounts)
{
        static const SandboxDevice devices[] = {
                {.path = "/dev/mydev",
                 .type = 'c',
                 .major = 1,
                 .minor = 3,
                 .mode = 0620,
                 .uid = SANDBOX_UID,
                 .gid = SANDBOX_GID},
        };
        static char *const masked[] = {"/proc/kcore", "/proc/keys", "/proc/acpi",
                                       "/etc/secret", "/not/there", NULL};
        static char *const readonly[] = {"/proc/sys", "/proc/sysrq-trigger", "/missing", NULL};
        static char *const sysctls[] = {"kernel.shmmax=12345678", "net.ipv4.ip_forward=1",
                                        "net.ipv4.ping_group_range=1000 1000", NULL};
        _cleanup_free_ char *host_shmmax = NULL, *host_fwd = NULL, *after_shmmax = NULL,
                            *after_fwd = NULL, *out = NULL;
        struct statfs sf;
        char opts[600];
        Run r;

        REQUIRE();
        snprintf(bind_file, sizeof bind_file, "%s/file", host);
        snprintf(bind_dir, sizeof bind_dir, "%s/dir", host);
        host_shmmax = read_sysctl("/proc/sys/kernel/shmmax");
        host_fwd = read_sysctl("/proc/sys/net/ipv4/ip_forward");
        ck_assert_str_ne(host_shmmax, "12345678\n");

        run_init(&r, mounts_script, podman_mounts, ELEMENTSOF(podman_mounts));
        r.rootfs.devices = devices;
        r.rootfs.n_devices = ELEMENTSOF(devices);
        r.rootfs.masked_paths = masked;
        r.rootfs.readonly_paths = readonly;
        r.rootfs.sysctls = sysctls;
        r.rootfs.readonly = true;
        r.spec.workdir = "/work/dir";
        out = run_ok(&r);

        assert_opts(out, "/proc", "proc",
                    (const char *[]){"rw", "nosuid", "nodev", "noexec", NULL});
        assert_opts(out, "/dev", "tmpfs",
                    (const char *[]){"rw", "nosuid", "noexec", "mode=755", "size=65536k", NULL});
        mount_opts(out, "/dev", "tmpfs", opts, sizeof opts);
        ck_assert_msg(!has_opt(opts, "nodev"), "/dev is nodev: %s", opts);
        assert_opts(out, "/sys", "sysfs",
                    (const char *[]){"ro", "nosuid", "nodev", "noexec", NULL});
        assert_opts(
                out, "/dev/pts", "devpts",
                (const char *[]){"nosuid", "noexec", "gid=5", "mode=620", "ptmxmode=666", NULL});
        assert_opts(out, "/dev/mqueue", "mqueue",
                    (const char *[]){"nosuid", "nodev", "noexec", NULL});
        assert_opts(out, "/etc/hosts.bound", NULL, (const char *[]){"ro", NULL});
        assert_opts(out, "/run", "tmpfs",
                    (const char *[]){"rw", "nosuid", "nodev", "size=1024k", "mode=1733", NULL});
        assert_opts(out, "/", NULL, (const char *[]){"ro", NULL});
        assert_opts(out, "/proc/sys", "proc", (const char *[]){"ro", NULL});
        /* Masks of what this kernel has (CONFIG_KEYS, ACPI). */
        if (access("/proc/keys", F_OK) == 0)
                assert_opts(out, "/proc/keys", NULL, (const char *[]){"ro", NULL});
        if (access("/proc/acpi", F_OK) == 0)
                assert_opts(out, "/proc/acpi", "tmpfs", (const char *[]){"ro", "size=4k", NULL});
        assert_opts(out, "/etc/secret", NULL, (const char *[]){"ro", NULL});
        /* The cgroup mount, read-only: cgroup2 on a v2 host, else a tmpfs with each of
         * the host's hierarchies (rootfs.c, mount_cgroup()). */
        if (statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
                assert_opts(out, "/sys/fs/cgroup", "cgroup2", (const char *[]){"ro", NULL});
        else {
                assert_opts(out, "/sys/fs/cgroup", "tmpfs", (const char *[]){"ro", NULL});
                if (access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK) == 0)
                        assert_opts(out, "/sys/fs/cgroup/memory", "cgroup",
                                    (const char *[]){"ro", "nosuid", "memory", NULL});
                if (statfs("/sys/fs/cgroup/unified", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
                        assert_opts(out, "/sys/fs/cgroup/unified", "cgroup2",
                                    (const char *[]){"ro", NULL});
        }
        ck_assert_msg(strstr(out, "hello from a bound file\ninner\n"), "binds:\n%s", out);
        ck_assert_msg(strstr(out, "devnull-ok\nzero=4096\nurandom-ok\n"), "devices:\n%s", out);
        ck_assert_msg(strstr(out, "ptmx=pts/ptmx fd=/proc/self/fd stdout=/proc/self/fd/1\n"),
                      "links:\n%s", out);
        ck_assert_msg(strstr(out, "mydev=1000:1000 620 1,3\nmydev-ok\n"), "device:\n%s", out);
        ck_assert_msg(strstr(out, "shmmax=12345678 fwd=1 ping=1000 1000\n"), "sysctls:\n%s", out);
        ck_assert_msg(
                strstr(out, "root-ro\nrun-writable\nrun=1733 1000:1000\nsecret=0 keys=0\nacpi=0\n"),
                "read-only root, masks:\n%s", out);
        ck_assert_msg(strstr(out, "procsys-ro\ncgroup-listed\ncgroup-ns-root\npwd=/work/dir\n"),
                      "read-only /proc/sys, cgroup, workdir:\n%s", out);

        /* The host's own values are untouched. */
        after_shmmax = read_sysctl("/proc/sys/kernel/shmmax");
        after_fwd = read_sysctl("/proc/sys/net/ipv4/ip_forward");
        ck_assert_str_eq(after_shmmax, host_shmmax);
        ck_assert_str_eq(after_fwd, host_fwd);
}
END_TEST

/* A mount whose options the file system refuses fails at its step, named. */
START_TEST(test_mount_error_named)
{
        static const SandboxMount mounts[] = {
                {.type = "proc", .source = "proc", .target = "/proc"},
                {.type = "tmpfs", .source = "tmpfs", .target = "/dev", .data = "mode=zzz"},
        };
        Run r;

        REQUIRE();
        run_init(&r, "true", mounts, ELEMENTSOF(mounts));
        expect_fail(&r, -EINVAL, SANDBOX_STEP_MOUNT, "mount 1 (tmpfs on /dev)");
        run_init(&r, "true", (const SandboxMount[]){{.type = "nosuchfs", .target = "/x"}}, 1);
        expect_fail(&r, -ENODEV, SANDBOX_STEP_MOUNT, "mount 0 (nosuchfs on /x)");
}
END_TEST

/* Sysctls that are not the sandbox's own are refused before anything starts. */
START_TEST(test_sysctl_refused)
{
        static char *const swappiness[] = {"vm.swappiness=10", NULL};
        static char *const hostnet[] = {"net.ipv4.ip_forward=1", NULL};
        static char *const bad[] = {"kernel.shmmax", NULL};
        static char *const dots[] = {"net..ipv4=1", NULL};
        static char *const ping_bad[] = {"net.ipv4.ping_group_range=5 x", NULL};
        static const SandboxNamespace only_mnt[] = {{.type = CLONE_NEWNS, .fd = -1}};
        Run r;

        REQUIRE();
        run_init(&r, "true", NULL, 0);
        r.rootfs.sysctls = swappiness;
        expect_fail(&r, -EPERM, SANDBOX_STEP_PREPARE, "vm.swappiness");
        run_init(&r, "true", NULL, 0);
        r.rootfs.sysctls = bad;
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "kernel.shmmax");
        run_init(&r, "true", NULL, 0);
        r.rootfs.sysctls = dots;
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "net..ipv4");
        /* net.* in the caller's own network namespace would be the host's. */
        run_init(&r, "true", NULL, 0);
        r.rootfs.sysctls = hostnet;
        r.spec.namespaces = only_mnt;
        r.spec.n_namespaces = 1;
        expect_fail(&r, -EPERM, SANDBOX_STEP_PREPARE, "network namespace");
        /* Not two gids in order. */
        run_init(&r, "true", NULL, 0);
        r.rootfs.sysctls = ping_bad;
        expect_fail(&r, -EINVAL, SANDBOX_STEP_NAMESPACE, "net.ipv4.ping_group_range");
}
END_TEST

/*
 * net.ipv4.ping_group_range is a range of the container's gids (runc writes it from
 * inside its user namespace; cella's comes after the jail): podman's "0 0" (its root
 * group, which cella's map of one id does not have) leaves the namespace's default,
 * no group; Docker's "0 2147483647" (every group) becomes the app's gid, the one the
 * map has; "1000 1000" is the app's.
 */
START_TEST(test_sysctl_ping_group_range)
{
        static const struct {
                const char *set, *want;
        } cases[] = {
                {"net.ipv4.ping_group_range=0 0", "65534\t65534\n"}, /* "1 0": unmapped ids */
                {"net.ipv4.ping_group_range=0 2147483647", "1000\t1000\n"},
                {"net.ipv4.ping_group_range=1000 1000", "1000\t1000\n"},
        };

        REQUIRE();
        /* podman's "0 0" under cella's map of one id: seen from the host, in the
         * sandbox's network namespace, the default stays (not host gid 0's "0 0"). */
        {
                static char *const podman[] = {"net.ipv4.ping_group_range=0 0", NULL};
                _cleanup_close_pair_ int in[2] = {-EBADF, -EBADF};
                SandboxError err = {};
                SandboxExit e = {};
                Sandbox *s = NULL;
                char buf[64] = "";
                int status, seen[2];
                pid_t pid;
                Run r;

                ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
                ck_assert_int_eq(pipe2(seen, O_CLOEXEC), 0);
                run_init(&r, "read x", NULL, 0);
                r.rootfs.sysctls = podman;
                r.spec.stdio[0] = in[0];
                ck_assert_msg(sandbox_spawn(&r.spec, &s, &err) == 0, "%s", err.detail);
                pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0) {
                        char v[64] = "";
                        int fd;
                        ssize_t k;

                        if (setns(s->pidfd, CLONE_NEWNET) < 0)
                                _exit(2);
                        fd = open("/proc/sys/net/ipv4/ping_group_range", O_RDONLY | O_CLOEXEC);
                        k = fd < 0 ? -1 : read(fd, v, sizeof v - 1);
                        _exit(k > 0 && write(seen[1], v, (size_t)k) == k ? 0 : 3);
                }
                close(seen[1]);
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader %d", status);
                ck_assert_int_gt(read(seen[0], buf, sizeof buf - 1), 0);
                close(seen[0]);
                ck_assert_str_eq(buf, "1\t0\n");
                ck_assert_int_eq(write(in[1], "\n", 1), 1);
                ck_assert_int_eq(sandbox_wait(s, &e), 0);
                sandbox_free(s);
                r.out[0] = safe_close(r.out[0]);
                r.out[1] = safe_close(r.out[1]);
        }
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *const sysctls[] = {(char *)cases[i].set, NULL};
                _cleanup_free_ char *out = NULL,
                                    *before = read_sysctl("/proc/sys/net/ipv4/ping_group_range"),
                                    *after = NULL;
                Run r;

                run_init(&r, "cat /proc/sys/net/ipv4/ping_group_range",
                         (const SandboxMount[]){
                                 {.type = "proc", .source = "proc", .target = "/proc"}},
                         1);
                r.rootfs.sysctls = sysctls;
                out = run_ok(&r);
                ck_assert_msg(strcmp(out, cases[i].want) == 0, "%s: read %s", cases[i].set, out);
                after = read_sysctl("/proc/sys/net/ipv4/ping_group_range");
                ck_assert_str_eq(after, before);
        }
}
END_TEST

/* Paths with "..", a relative root, a root that is not a directory: refused. */
START_TEST(test_spec_refused)
{
        static char *const masked[] = {"/proc/../etc", NULL};
        static const SandboxDevice dev[] = {{.path = "/dev/../../x", .type = 'c'}};
        Run r;

        REQUIRE();
        run_init(&r, "true",
                 (const SandboxMount[]){
                         {.type = "bind", .source = "/etc", .target = "/mnt/../../etc"}},
                 1);
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "/mnt/../../etc");
        run_init(&r, "true", (const SandboxMount[]){{.type = "tmpfs", .target = "/."}}, 1);
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "target /.");
        run_init(&r, "true", (const SandboxMount[]){{.type = "tmpfs", .target = "relative"}}, 1);
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "relative");
        run_init(&r, "true",
                 (const SandboxMount[]){{.type = "tmpfs", .target = "/x", .flags = MS_REMOUNT}}, 1);
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "mount 0");
        run_init(&r, "true", NULL, 0);
        r.rootfs.masked_paths = masked;
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "/proc/../etc");
        run_init(&r, "true", NULL, 0);
        r.rootfs.devices = dev;
        r.rootfs.n_devices = 1;
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "device 0");
        run_init(&r, "true", NULL, 0);
        r.rootfs.path = "/etc/passwd";
        expect_fail(&r, -ENOTDIR, SANDBOX_STEP_PREPARE, "/etc/passwd");
        run_init(&r, "true", NULL, 0);
        r.rootfs.path = "/.";
        expect_fail(&r, -EPERM, SANDBOX_STEP_PREPARE, "host's own root");
}
END_TEST

/*
 * Escapes through the root's own symlinks: a target that runs through "/evil ->
 * /etc" or "up -> ../../../..<host dir>" resolves in the root, so the mount point is
 * made there and the bound file shows there, never on the host.
 */
START_TEST(test_escape_symlink_target)
{
        char evil[PATH_MAX], up[PATH_MAX], upto[PATH_MAX], probe[512], in_root[PATH_MAX];
        static char target1[] = "/evil/cella-rootfs-escape-probe";
        static char target2[] = "/up/escaped";
        SandboxMount mounts[] = {
                {.type = "bind", .source = bind_file, .target = target1, .flags = MS_BIND},
                {.type = "bind", .source = bind_file, .target = target2, .flags = MS_BIND},
                {.type = "tmpfs", .source = "tmpfs", .target = "/up/sub/tmp"},
        };
        _cleanup_free_ char *out = NULL;
        struct stat st;
        Run r;

        REQUIRE();
        snprintf(bind_file, sizeof bind_file, "%s/file", host);
        snprintf(evil, sizeof evil, "%s/evil", root);
        snprintf(up, sizeof up, "%s/up", root);
        snprintf(upto, sizeof upto, "../../../../../../../..%s/esc", host);
        ck_assert_int_eq(symlink("/etc", evil), 0);
        ck_assert_int_eq(symlink(upto, up), 0);
        snprintf(probe, sizeof probe, "%s/esc", host);
        ck_assert_int_eq(mkdir(probe, 0755), 0);
        ck_assert_int_ne(access("/etc/cella-rootfs-escape-probe", F_OK), 0);

        run_init(&r,
                 "cat /etc/cella-rootfs-escape-probe; cat "
                 "/up/escaped; "
                 "grep -c ' /etc/cella-rootfs-escape-probe ' /proc/self/mounts",
                 mounts, ELEMENTSOF(mounts));
        /* A proc mount, for /proc/self/mounts. */
        {
                static SandboxMount with_proc[4];

                with_proc[0] = (SandboxMount){.type = "proc", .source = "proc", .target = "/proc"};
                memcpy(with_proc + 1, mounts, sizeof mounts);
                r.rootfs.mounts = with_proc;
                r.rootfs.n_mounts = 4;
                out = run_ok(&r);
        }
        ck_assert_str_eq(out, "hello from a bound file\nhello from a bound file\n1\n");
        /* On the host: nothing made in /etc, nothing in the probe directory; the mount
         * points were made in the root. */
        ck_assert_int_ne(access("/etc/cella-rootfs-escape-probe", F_OK), 0);
        snprintf(in_root, sizeof in_root, "%s/esc/escaped", probe);
        ck_assert_int_ne(access(in_root, F_OK), 0);
        snprintf(in_root, sizeof in_root, "%s/etc/cella-rootfs-escape-probe", root);
        ck_assert_int_eq(stat(in_root, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        snprintf(in_root, sizeof in_root, "%s%s/esc/escaped", root, host);
        ck_assert_int_eq(stat(in_root, &st), 0);
        snprintf(in_root, sizeof in_root, "%s%s/esc/sub/tmp", root, host);
        ck_assert_int_eq(stat(in_root, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        unlink(evil);
        unlink(up);
}
END_TEST

/* A target through a magic link (/proc/self/root of a proc mounted before it) is
 * refused, not followed to wherever the link points. */
START_TEST(test_escape_magic_link)
{
        static const SandboxMount mounts[] = {
                {.type = "proc", .source = "proc", .target = "/proc"},
                {.type = "tmpfs", .source = "tmpfs", .target = "/magic/x"},
        };
        char magic[PATH_MAX];
        Run r;

        REQUIRE();
        snprintf(magic, sizeof magic, "%s/magic", root);
        ck_assert_int_eq(symlink("/proc/self/root/tmp", magic), 0);
        run_init(&r, "true", mounts, ELEMENTSOF(mounts));
        expect_fail(&r, -ELOOP, SANDBOX_STEP_MOUNT, "mount 1 (tmpfs on /magic/x)");
        unlink(magic);
        /* The same through a file descriptor's link. */
        ck_assert_int_eq(symlink("/proc/1/fd/0", magic), 0);
        run_init(&r, "true",
                 (const SandboxMount[]){{.type = "proc", .source = "proc", .target = "/proc"},
                                        {.type = "bind",
                                         .source = "/etc/hostname",
                                         .target = "/magic",
                                         .flags = MS_BIND}},
                 2);
        expect_fail(&r, -ELOOP, SANDBOX_STEP_MOUNT, "mount 1 (bind on /magic)");
        unlink(magic);
}
END_TEST

/* Nothing is mounted onto the proc file system mounted before, but a proc on /proc and
 * lxcfs's binds: a mount there would hide a /proc file the masks rely on. */
START_TEST(test_proc_targets)
{
        static const SandboxMount over_sys[] = {
                {.type = "proc", .source = "proc", .target = "/proc"},
                {.type = "tmpfs", .source = "tmpfs", .target = "/proc/sys"},
        };
        static const SandboxMount via_link[] = {
                {.type = "proc", .source = "proc", .target = "/proc"},
                {.type = "bind",
                 .source = bind_file,
                 .target = "/procsys/kernel/core_pattern",
                 .flags = MS_BIND},
        };
        static const SandboxMount lxcfs[] = {
                {.type = "proc", .source = "proc", .target = "/proc"},
                {.type = "bind", .source = bind_file, .target = "/proc/uptime", .flags = MS_BIND},
        };
        char link[PATH_MAX];
        _cleanup_free_ char *out = NULL;
        Run r;

        REQUIRE();
        snprintf(bind_file, sizeof bind_file, "%s/file", host);
        run_init(&r, "true", over_sys, ELEMENTSOF(over_sys));
        expect_fail(&r, -EPERM, SANDBOX_STEP_MOUNT,
                    "mount 1 (tmpfs on /proc/sys): a target in a proc");
        snprintf(link, sizeof link, "%s/procsys", root);
        ck_assert_int_eq(symlink("/proc/sys", link), 0);
        run_init(&r, "true", via_link, ELEMENTSOF(via_link));
        expect_fail(&r, -EPERM, SANDBOX_STEP_MOUNT,
                    "mount 1 (bind on /procsys/kernel/core_pattern)");
        unlink(link);
        run_init(&r, "cat /proc/uptime", lxcfs, ELEMENTSOF(lxcfs));
        out = run_ok(&r);
        ck_assert_str_eq(out, "hello from a bound file\n");
}
END_TEST

/* The app's own terminal (cella-oci's console socket) in the config's devpts, through
 * the default /dev/ptmx -> pts/ptmx link. */
START_TEST(test_pty)
{
        static const SandboxMount mounts[] = {
                {.type = "proc", .source = "proc", .target = "/proc"},
                {.type = "tmpfs", .source = "tmpfs", .target = "/dev", .data = "mode=755"},
                {.type = "devpts",
                 .source = "devpts",
                 .target = "/dev/pts",
                 .flags = MS_NOSUID | MS_NOEXEC,
                 .data = "newinstance,ptmxmode=0666,mode=0620"},
        };
        _cleanup_close_pair_ int sock[2] = {-EBADF, -EBADF};
        _cleanup_close_ int master = -EBADF;
        char cbuf[CMSG_SPACE(sizeof(int))], byte, out[512];
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = cbuf,
                            .msg_controllen = sizeof cbuf};
        struct cmsghdr *cm;
        SandboxError err = {};
        SandboxExit e = {};
        Sandbox *s = NULL;
        size_t n = 0;
        Run r;

        REQUIRE();
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock), 0);
        run_init(&r, "tty; stty size", mounts, ELEMENTSOF(mounts));
        r.spec.pty_socket = sock[1];
        r.spec.pty_rows = 30;
        r.spec.pty_cols = 100;
        ck_assert_msg(sandbox_spawn(&r.spec, &s, &err) == 0, "spawn: %s: %s",
                      sandbox_step_to_string(err.step), err.detail);
        sock[1] = safe_close(sock[1]);
        r.out[1] = safe_close(r.out[1]);
        ck_assert_int_eq(recvmsg(sock[0], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC), 1);
        cm = CMSG_FIRSTHDR(&mh);
        ck_assert_ptr_nonnull(cm);
        ck_assert_int_eq(cm->cmsg_type, SCM_RIGHTS);
        memcpy(&master, CMSG_DATA(cm), sizeof master);
        for (;;) { /* EIO once the app's side is closed */
                ssize_t k = read(master, out + n, sizeof out - 1 - n);

                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        out[n] = 0;
        ck_assert_int_eq(sandbox_wait(s, &e), 0);
        sandbox_free(s);
        ck_assert_int_eq(e.status, 0);
        ck_assert_msg(strstr(out, "/dev/pts/0\r\n30 100\r\n"), "output: %s", out);
        r.out[0] = safe_close(r.out[0]);
}
END_TEST

/*
 * Device nodes the image put in the root: /etc/kmsg (char 1:11, the host's kernel
 * log, which anyone may write to) and a block node of the host's own root disk, both
 * mode 0666. cella applies no device cgroup, so the root is mounted nodev and neither
 * opens; the default devices (binds of their own) still work.
 */
START_TEST(test_escape_image_device_node)
{
        static const SandboxMount mounts[] = {
                {.type = "tmpfs", .source = "tmpfs", .target = "/dev", .data = "mode=755"},
        };
        char kmsg[PATH_MAX], disk[PATH_MAX], marker[64], script[512];
        _cleanup_free_ char *out = NULL, *log = NULL;
        struct stat st;
        FILE *f;
        size_t n = 0;
        Run r;

        REQUIRE();
        ck_assert_int_eq(stat("/", &st), 0);
        snprintf(kmsg, sizeof kmsg, "%s/etc/kmsg", root);
        snprintf(disk, sizeof disk, "%s/etc/disk", root);
        ck_assert_int_eq(mknod(kmsg, S_IFCHR | 0666, makedev(1, 11)), 0);
        ck_assert_int_eq(mknod(disk, S_IFBLK | 0666, st.st_dev), 0);
        ck_assert_int_eq(chmod(kmsg, 0666), 0);
        ck_assert_int_eq(chmod(disk, 0666), 0);
        snprintf(marker, sizeof marker, "cella-rootfs-kmsg-%d", (int)getpid());
        snprintf(script, sizeof script,
                 "echo %s 2>/dev/null > /etc/kmsg && echo kmsg-written || echo kmsg-refused; "
                 "head -c 512 /etc/disk > /dev/null 2>&1 && echo disk-read || echo disk-refused; "
                 "head -c 1 /dev/zero | wc -c",
                 marker);
        run_init(&r, script, mounts, ELEMENTSOF(mounts));
        out = run_ok(&r);
        unlink(kmsg);
        unlink(disk);
        ck_assert_str_eq(out, "kmsg-refused\ndisk-refused\n1\n");
        /* A spec device in a directory of the (nodev) root: the host's node of the same
         * numbers is bound; with none, the start fails, naming it. */
        {
                static const SandboxDevice tun[] = {
                        {.path = "/etc/net/tun", .type = 'c', .major = 10, .minor = 200}};
                static const SandboxDevice fuse[] = {
                        {.path = "/dev/fuse", .type = 'c', .major = 10, .minor = 229}};
                _cleanup_free_ char *out2 = NULL;

                run_init(&r, "true", NULL, 0);
                r.rootfs.devices = tun;
                r.rootfs.n_devices = 1;
                expect_fail(&r, -EPERM, SANDBOX_STEP_MOUNT, "device 0 (/etc/net/tun)");
                if (access("/dev/fuse", F_OK) == 0) {
                        run_init(&r,
                                 "stat -c '%t,%T' /dev/fuse; grep -c ' /dev/fuse ' "
                                 "/proc/self/mounts",
                                 (const SandboxMount[]){
                                         {.type = "proc", .source = "proc", .target = "/proc"}},
                                 1);
                        r.rootfs.devices = fuse;
                        r.rootfs.n_devices = 1;
                        out2 = run_ok(&r);
                        ck_assert_str_eq(out2, "a,e5\n1\n");
                }
        }
        /* The host's kernel log has no such line. */
        f = popen("dmesg 2>/dev/null | tail -n 50", "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(read_full_fd(fileno(f), OUTPUT_MAX, &log, &n), 0);
        pclose(f);
        ck_assert_msg(!strstr(log, marker), "the app wrote to the host's kernel log");
}
END_TEST

/* A spec with a root never starts in a warm sandbox. */
START_TEST(test_warm_refuses)
{
        SandboxWarm *w = NULL;
        Run r;

        REQUIRE();
        ck_assert_int_eq(sandbox_warm_new(NULL, NULL, NULL, &w), 0);
        run_init(&r, "true", NULL, 0);
        ck_assert(!sandbox_warm_fits(w, &r.spec));
        r.spec.rootfs = NULL;
        ck_assert(sandbox_warm_fits(w, &r.spec));
        sandbox_warm_free(w);
        r.out[0] = safe_close(r.out[0]);
        r.out[1] = safe_close(r.out[1]);
}
END_TEST

int main(void)
{
        Suite *suite = suite_create("sandbox-rootfs");
        TCase *tc = tcase_create("rootfs");
        SRunner *sr;

        if (skip_init() < 0)
                return EXIT_FAILURE;
        tcase_add_unchecked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_mounts);
        tcase_add_test(tc, test_mount_error_named);
        tcase_add_test(tc, test_sysctl_refused);
        tcase_add_test(tc, test_sysctl_ping_group_range);
        tcase_add_test(tc, test_spec_refused);
        tcase_add_test(tc, test_escape_symlink_target);
        tcase_add_test(tc, test_escape_magic_link);
        tcase_add_test(tc, test_proc_targets);
        tcase_add_test(tc, test_pty);
        tcase_add_test(tc, test_escape_image_device_node);
        tcase_add_test(tc, test_warm_refuses);
        suite_add_tcase(suite, tc);
        sr = srunner_create(suite);
        return skip_run(sr);
}
