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
#include <sys/stat.h>
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

static const char *const applets[] = {"sh",    "cat",  "ls",       "echo", "head", "wc",
                                      "touch", "stat", "readlink", "pwd",  "grep", "id"};

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
        put_file(path, "inner", "inner\n", 0644);
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
         .data = "mode=1733,size=1m"},
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
        "echo shmmax=$(cat /proc/sys/kernel/shmmax) fwd=$(cat /proc/sys/net/ipv4/ip_forward)\n"
        "touch /newfile 2>/dev/null && echo root-writable || echo root-ro\n"
        "echo y > /run/f && echo run-writable\n"
        "echo run=$(stat -c %a /run)\n"
        "echo secret=$(cat /etc/secret | wc -c) keys=$(cat /proc/keys | wc -c)\n"
        "echo acpi=$(ls -A /proc/acpi 2>&1 | wc -l)\n"
        "echo z > /proc/sys/kernel/shmmax 2>/dev/null && echo procsys-writable || "
        "echo procsys-ro\n"
        "ls /sys/fs/cgroup | grep -q . && echo cgroup-listed\n"
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
        static char *const sysctls[] = {"kernel.shmmax=12345678", "net.ipv4.ip_forward=1", NULL};
        _cleanup_free_ char *host_shmmax = NULL, *host_fwd = NULL, *after_shmmax = NULL,
                            *after_fwd = NULL, *out = NULL;
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
        assert_opts(out, "/proc/keys", NULL, (const char *[]){"ro", NULL});
        assert_opts(out, "/etc/secret", NULL, (const char *[]){"ro", NULL});
        assert_opts(out, "/sys/fs/cgroup", "tmpfs", (const char *[]){"ro", NULL});
        ck_assert_msg(strstr(out, "hello from a bound file\ninner\n"), "binds:\n%s", out);
        ck_assert_msg(strstr(out, "devnull-ok\nzero=4096\nurandom-ok\n"), "devices:\n%s", out);
        ck_assert_msg(strstr(out, "ptmx=pts/ptmx fd=/proc/self/fd stdout=/proc/self/fd/1\n"),
                      "links:\n%s", out);
        ck_assert_msg(strstr(out, "mydev=1000:1000 620 1,3\nmydev-ok\n"), "device:\n%s", out);
        ck_assert_msg(strstr(out, "shmmax=12345678 fwd=1\n"), "sysctls:\n%s", out);
        ck_assert_msg(strstr(out, "root-ro\nrun-writable\nrun=1733\nsecret=0 keys=0\nacpi=0\n"),
                      "read-only root, masks:\n%s", out);
        ck_assert_msg(strstr(out, "procsys-ro\ncgroup-listed\npwd=/work/dir\n"),
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
        tcase_add_test(tc, test_spec_refused);
        tcase_add_test(tc, test_escape_symlink_target);
        tcase_add_test(tc, test_escape_magic_link);
        tcase_add_test(tc, test_warm_refuses);
        suite_add_tcase(suite, tc);
        sr = srunner_create(suite);
        return skip_run(sr);
}
