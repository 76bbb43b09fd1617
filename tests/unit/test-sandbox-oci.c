/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The OCI fields of SandboxSpec and SandboxEnter (sandbox.h, "OCI jails";
 * docs/oci.md), each on a real sandbox in cella's runtime root: what the app sees
 * (its ids and groups, capability sets, no_new_privs, umask, rlimits, namespaces
 * made, joined or shared), the exec fifo gate, the detached init and its exit
 * status, the refusals at SANDBOX_STEP_PREPARE, and a command entered with the
 * container's ids and capabilities. Needs root; otherwise every test is skipped.
 *
 * The apps are /bin/sh scripts in a temporary directory bound as /app; they print
 * what they see to a pipe the test reads.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"
#include "skip.h"
#include "test-util.h"

/* Host ids of the apps, as test-sandbox's: past cella's default ranges. */
#define TEST_HOST_UID(n) ((uid_t)(0x7ffe0100u + (n)))
#define TEST_IDS_BASE    ((uid_t)0x7fff0000u)
#define OUTPUT_MAX       (64 * 1024)
#define CAP(n)           (UINT64_C(1) << (n))

static char app_dir[] = "/tmp/test-sandbox-oci-XXXXXX";
static SeccompProgram *seccomp_prog;
static char *const test_envp[] = {"PATH=/usr/bin:/bin", "HOME=/", NULL};

static void setup(void)
{
        if (geteuid() != 0)
                return;
        strcpy(app_dir + strlen(app_dir) - 6, "XXXXXX");
        if (!mkdtemp(app_dir) || chmod(app_dir, 0755) < 0) {
                fprintf(stderr, "mkdtemp %s: %m\n", app_dir);
                abort();
        }
        if (seccomp_program_builtin(&(SeccompOptions){}, &seccomp_prog) < 0) {
                fprintf(stderr, "seccomp_program_builtin failed\n");
                abort();
        }
}

static void teardown(void)
{
        if (geteuid() != 0)
                return;
        rm_tree(app_dir);
        seccomp_prog = seccomp_program_free(seccomp_prog);
}

#define REQUIRE_ROOT()                                                                             \
        do {                                                                                       \
                if (geteuid() != 0)                                                                \
                        SKIP_TEST("sandbox_spawn needs root");                                     \
        } while (0)

static void write_script(const char *name, const char *body)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        _cleanup_close_ int fd = -EBADF;

        ck_assert_int_ge(asprintf(&path, "%s/%s", app_dir, name), 0);
        ck_assert_int_ge(asprintf(&text, "#!/bin/sh\n%s\n", body), 0);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
        ck_assert_msg(fd >= 0, "create %s: %m", path);
        ck_assert_int_eq(loop_write(fd, text, strlen(text)), 0);
        ck_assert_int_eq(fchmod(fd, 0755), 0);
}

typedef struct Run {
        SandboxSpec spec;
        SandboxBind bind;
        char exec_path[64];
        char *argv[2];
        int out[2]; /* the app's stdout and stderr */
        int in[2];  /* its stdin */
} Run;

/* Fills r to run /app/<script> (written with body) as host uid TEST_HOST_UID(n). */
static void run_init(Run *r, unsigned n, const char *body)
{
        *r = (Run){};
        write_script("app.sh", body);
        r->bind = (SandboxBind){.source = app_dir, .target = "/app"};
        snprintf(r->exec_path, sizeof r->exec_path, "/app/app.sh");
        r->argv[0] = "app.sh";
        ck_assert_int_eq(pipe2(r->out, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(r->in, O_CLOEXEC), 0);
        r->spec = (SandboxSpec){
                .hostname = "t-oci",
                .host_uid = TEST_HOST_UID(n),
                .host_gid = TEST_HOST_UID(n),
                .binds = &r->bind,
                .n_binds = 1,
                .exec_path = r->exec_path,
                .argv = r->argv,
                .envp = test_envp,
                .seccomp = seccomp_prog,
                .stdio = {r->in[0], r->out[1], r->out[1]},
                .channel_fd = -1,
                .init_path = CELLA_INIT_PATH,
        };
}

static void run_done(Run *r)
{
        safe_close(r->out[0]);
        safe_close(r->out[1]);
        safe_close(r->in[0]);
        safe_close(r->in[1]);
}

static Sandbox *run_spawn(Run *r)
{
        SandboxError err = {};
        Sandbox *s = NULL;
        int k = sandbox_spawn(&r->spec, &s, &err);

        ck_assert_msg(k == 0, "sandbox_spawn: %s at step %s: %s", strerror(-k),
                      sandbox_step_to_string(err.step), err.detail);
        r->out[1] = safe_close(r->out[1]);
        r->in[0] = safe_close(r->in[0]);
        return s;
}

/* Spawns, expecting failure r_expected at step with detail_has in the detail. */
static void expect_fail(Run *r, int r_expected, SandboxStep step, const char *detail_has)
{
        SandboxError err = {};
        Sandbox *s = NULL;
        int k = sandbox_spawn(&r->spec, &s, &err);

        ck_assert_msg(k == r_expected, "sandbox_spawn gave %d (%s at %s), expected %d", k,
                      err.detail, sandbox_step_to_string(err.step), r_expected);
        ck_assert_ptr_null(s);
        ck_assert_msg(err.step == step, "step %s, expected %s (%s)",
                      sandbox_step_to_string(err.step), sandbox_step_to_string(step), err.detail);
        ck_assert_msg(strstr(err.detail, detail_has), "detail \"%s\" lacks \"%s\"", err.detail,
                      detail_has);
        errno = 0;
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* nothing left behind */
}

/* Everything the app wrote until the sandbox closed the pipe. Caller frees. */
static char *run_output(Run *r, Sandbox *s, int want_status)
{
        SandboxExit e = {};
        char *buf = NULL;
        size_t n = 0;

        r->in[1] = safe_close(r->in[1]);
        ck_assert_int_eq(read_full_fd(r->out[0], OUTPUT_MAX, &buf, &n), 0);
        ck_assert_int_eq(sandbox_wait(s, &e), 0);
        ck_assert_msg(e.code == CLD_EXITED && e.status == want_status,
                      "app ended with code %d status %d, expected exit %d; it said: %s", e.code,
                      e.status, want_status, buf);
        return buf;
}

/* What "key:\t" says in text (up to its line's end), copied into buf. */
static const char *field(const char *text, const char *key, char *buf, size_t size)
{
        _cleanup_free_ char *needle = NULL;
        const char *p, *end;

        ck_assert_int_ge(asprintf(&needle, "%s:\t", key), 0);
        p = strstr(text, needle);
        ck_assert_msg(p, "no %s in: %s", key, text);
        p += strlen(needle);
        end = strchrnul(p, '\n');
        snprintf(buf, size, "%.*s", (int)(end - p), p);
        return buf;
}

static uint64_t hex_field(const char *text, const char *key)
{
        char buf[64];

        return strtoull(field(text, key, buf, sizeof buf), NULL, 16);
}

/* The inode of our own namespace of type ("net", "uts", ...). */
static ino_t own_ns(const char *type)
{
        char path[64];
        struct stat st;

        snprintf(path, sizeof path, "/proc/self/ns/%s", type);
        ck_assert_int_eq(stat(path, &st), 0);
        return st.st_ino;
}

/* The app's status lines that matter here. */
#define STATUS_APP                                                                                 \
        "echo uid=$(id -u) gid=$(id -g) groups=$(id -G)\n"                                         \
        "grep -E '^(Cap|NoNewPrivs|Umask|Seccomp|Groups)' /proc/self/status"

/* ---- ids and groups --------------------------------------------------------- */

START_TEST(test_app_ids_and_groups)
{
        static const gid_t groups[] = {4000, 4001};
        _cleanup_free_ char *out = NULL;
        Sandbox *s;
        char buf[64];
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 1, STATUS_APP);
        r.spec.host_ids_base = TEST_IDS_BASE;
        r.spec.ids_set = true;
        r.spec.app_uid = 2000;
        r.spec.app_gid = 3000;
        r.spec.app_groups = groups;
        r.spec.n_app_groups = ELEMENTSOF(groups);
        s = run_spawn(&r);
        out = run_output(&r, s, 0);
        ck_assert_msg(strstr(out, "uid=2000 gid=3000 groups=3000 4000 4001"), "%s", out);
        ck_assert_str_eq(field(out, "Groups", buf, sizeof buf), "4000 4001 ");
        /* Ids of its own, still no capability and no_new_privs (caps NULL). */
        ck_assert_uint_eq(hex_field(out, "CapEff"), 0);
        ck_assert_uint_eq(hex_field(out, "CapPrm"), 0);
        ck_assert_uint_eq(hex_field(out, "CapBnd"), 0);
        ck_assert_str_eq(field(out, "NoNewPrivs", buf, sizeof buf), "1");
        sandbox_free(s);
        run_done(&r);
}
END_TEST

START_TEST(test_app_ids_must_be_mapped)
{
        static const gid_t groups[] = {4000};
        Run r;

        REQUIRE_ROOT();
        /* No block: only SANDBOX_UID and SANDBOX_GID are mapped. */
        run_init(&r, 2, "true");
        r.spec.ids_set = true;
        r.spec.app_uid = 2000;
        r.spec.app_gid = SANDBOX_GID;
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "uid 2000 is not mapped");
        run_done(&r);

        run_init(&r, 2, "true");
        r.spec.app_groups = groups;
        r.spec.n_app_groups = 1;
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "supplementary group 4000 is not mapped");
        run_done(&r);
}
END_TEST

/* An explicit map: uid and gid 0 inside are the app's host ids; still no power. */
START_TEST(test_explicit_maps)
{
        _cleanup_free_ char *out = NULL;
        SandboxIdMap um = {0, TEST_HOST_UID(3), 1}, gm = {0, TEST_HOST_UID(3), 1};
        _cleanup_free_ char *want = NULL;
        Sandbox *s;
        char buf[64];
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 3, STATUS_APP "\ncat /proc/self/uid_map /proc/self/setgroups");
        r.spec.ids_set = true;
        r.spec.uid_map = &um;
        r.spec.n_uid_map = 1;
        r.spec.gid_map = &gm;
        r.spec.n_gid_map = 1;
        s = run_spawn(&r);
        out = run_output(&r, s, 0);
        ck_assert_msg(strstr(out, "uid=0 gid=0 groups=0"), "%s", out);
        ck_assert_int_ge(asprintf(&want, "%10u %10u %10u", 0u, (unsigned)TEST_HOST_UID(3), 1u), 0);
        ck_assert_msg(strstr(out, want), "uid_map: %s", out);
        ck_assert_msg(strstr(out, "deny"), "setgroups: %s", out);
        /* Root inside, and still nothing: caps NULL is cella's rule. */
        ck_assert_uint_eq(hex_field(out, "CapEff"), 0);
        ck_assert_uint_eq(hex_field(out, "CapPrm"), 0);
        ck_assert_uint_eq(hex_field(out, "CapBnd"), 0);
        ck_assert_uint_eq(hex_field(out, "CapAmb"), 0);
        ck_assert_str_eq(field(out, "NoNewPrivs", buf, sizeof buf), "1");
        sandbox_free(s);
        run_done(&r);
}
END_TEST

START_TEST(test_bad_maps_refused)
{
        static SandboxIdMap many[341];
        SandboxIdMap over[2] = {{0, 100000, 10}, {5, 200000, 10}},
                     host_over[2] = {{0, 100000, 10}, {10, 100005, 10}}, empty = {0, 100000, 0},
                     top = {0, 4294967290u, 6}, ok = {0, 100000, 1};
        const struct {
                const SandboxIdMap *uid;
                size_t n_uid;
                const SandboxIdMap *gid;
                size_t n_gid;
                const char *detail;
        } cases[] = {
                {over, 2, &ok, 1, "uid map lines 1 and 2 overlap"},
                {&ok, 1, host_over, 2, "gid map lines 1 and 2 overlap"},
                {&empty, 1, &ok, 1, "uid map line 1"},
                {&ok, 1, &top, 1, "gid map line 1"},
                {many, 341, &ok, 1, "uid map has 341 lines"},
                {&ok, 1, NULL, 0, "a uid map without a gid map"},
        };
        Run r;

        REQUIRE_ROOT();
        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                many[i] = (SandboxIdMap){(uint32_t)i, 100000 + (uint32_t)i, 1};
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                run_init(&r, 4, "true");
                r.spec.uid_map = cases[i].uid;
                r.spec.n_uid_map = cases[i].n_uid;
                r.spec.gid_map = cases[i].gid;
                r.spec.n_gid_map = cases[i].n_gid;
                expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, cases[i].detail);
                run_done(&r);
        }
}
END_TEST

/* ---- capabilities, no_new_privs, umask, rlimits ----------------------------- */

START_TEST(test_caps)
{
        const SandboxCaps caps = {
                .bounding = CAP(CAP_CHOWN) | CAP(CAP_KILL) | CAP(CAP_NET_BIND_SERVICE),
                .permitted = CAP(CAP_CHOWN) | CAP(CAP_NET_BIND_SERVICE),
                .effective = CAP(CAP_CHOWN) | CAP(CAP_NET_BIND_SERVICE),
                .inheritable = CAP(CAP_NET_BIND_SERVICE),
                .ambient = CAP(CAP_NET_BIND_SERVICE),
        };
        _cleanup_free_ char *out = NULL;
        Sandbox *s;
        char buf[64];
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 5, STATUS_APP);
        r.spec.caps = &caps;
        s = run_spawn(&r);
        out = run_output(&r, s, 0);
        /* Not root inside: across the execve only the ambient set survives
         * (capabilities(7)), and it does. */
        ck_assert_msg(strstr(out, "uid=1000 gid=1000"), "%s", out);
        ck_assert_uint_eq(hex_field(out, "CapBnd"), caps.bounding);
        ck_assert_uint_eq(hex_field(out, "CapInh"), caps.inheritable);
        ck_assert_uint_eq(hex_field(out, "CapAmb"), caps.ambient);
        ck_assert_uint_eq(hex_field(out, "CapPrm"), caps.ambient);
        ck_assert_uint_eq(hex_field(out, "CapEff"), caps.ambient);
        ck_assert_str_eq(field(out, "NoNewPrivs", buf, sizeof buf), "1");
        ck_assert_str_eq(field(out, "Seccomp", buf, sizeof buf), "2");
        sandbox_free(s);
        run_done(&r);
}
END_TEST

/* allow_new_privs: no_new_privs clear, and the filter still loaded (before the uid
 * change, while privileged). Without caps or host ids it is refused. */
START_TEST(test_allow_new_privs)
{
        const SandboxCaps caps = {.bounding = CAP(CAP_CHOWN)};
        _cleanup_free_ char *out = NULL;
        Sandbox *s;
        char buf[64];
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 6, STATUS_APP);
        r.spec.caps = &caps;
        r.spec.allow_new_privs = true;
        s = run_spawn(&r);
        out = run_output(&r, s, 0);
        ck_assert_str_eq(field(out, "NoNewPrivs", buf, sizeof buf), "0");
        ck_assert_str_eq(field(out, "Seccomp", buf, sizeof buf), "2");
        ck_assert_uint_eq(hex_field(out, "CapBnd"), CAP(CAP_CHOWN));
        ck_assert_uint_eq(hex_field(out, "CapEff"), 0);
        sandbox_free(s);
        run_done(&r);

        /* The same with a notifying filter: its listener, sent from the early load,
         * reaches the Sandbox. */
        {
                SeccompProgram *notify = NULL;

                ck_assert_int_eq(
                        seccomp_program_builtin(&(SeccompOptions){.notify = true}, &notify), 0);
                run_init(&r, 6, STATUS_APP);
                r.spec.caps = &caps;
                r.spec.allow_new_privs = true;
                r.spec.seccomp = notify;
                s = run_spawn(&r);
                ck_assert_int_ge(s->seccomp_notify_fd, 0);
                free(out);
                out = run_output(&r, s, 0);
                ck_assert_str_eq(field(out, "NoNewPrivs", buf, sizeof buf), "0");
                ck_assert_str_eq(field(out, "Seccomp", buf, sizeof buf), "2");
                sandbox_free(s);
                run_done(&r);
                seccomp_program_free(notify);
        }

        run_init(&r, 6, "true");
        r.spec.allow_new_privs = true;
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "no_new_privs may be left clear only");
        run_done(&r);

        /* An effective capability outside the permitted set. */
        run_init(&r, 6, "true");
        r.spec.caps = &(SandboxCaps){.effective = CAP(CAP_KILL)};
        expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "effective set must lie");
        run_done(&r);
}
END_TEST

START_TEST(test_umask_and_rlimits)
{
        const SandboxRlimit limits[] = {
                {RLIMIT_NOFILE, 100, 200},
                {RLIMIT_STACK, 1 << 20, 2 << 20},
                {RLIMIT_CORE, 4096, 4096},
        };
        _cleanup_free_ char *out = NULL;
        Sandbox *s;
        char buf[64];
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 7,
                 STATUS_APP "\ngrep -E '^Max (open files|stack size|core file size)' "
                            "/proc/self/limits | tr -s ' '");
        r.spec.umask = 027;
        r.spec.umask_set = true;
        r.spec.rlimits = limits;
        r.spec.n_rlimits = ELEMENTSOF(limits);
        s = run_spawn(&r);
        out = run_output(&r, s, 0);
        ck_assert_str_eq(field(out, "Umask", buf, sizeof buf), "0027");
        ck_assert_msg(strstr(out, "Max open files 100 200 files"), "%s", out);
        ck_assert_msg(strstr(out, "Max stack size 1048576 2097152 bytes"), "%s", out);
        /* Replaces cella's own RLIMIT_CORE 0 (which it could not raise again). */
        ck_assert_msg(strstr(out, "Max core file size 4096 4096 bytes"), "%s", out);
        sandbox_free(s);
        run_done(&r);
}
END_TEST

START_TEST(test_rlimit_over_hard_refused)
{
        struct rlimit rl;
        SandboxRlimit l = {RLIMIT_NOFILE, 64, 0};
        Run r;

        REQUIRE_ROOT();
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_max == RLIM_INFINITY)
                SKIP_TEST("RLIMIT_NOFILE has no hard limit here");
        l.hard = rl.rlim_max + 1;
        run_init(&r, 8, "true");
        r.spec.rlimits = &l;
        r.spec.n_rlimits = 1;
        expect_fail(&r, -EPERM, SANDBOX_STEP_RLIMIT, "RLIMIT_NOFILE hard limit");
        run_done(&r);
}
END_TEST

/* ---- namespaces ------------------------------------------------------------- */

/* A network namespace of the test's own, made by unshare and left at once; its fd. */
static int make_netns(void)
{
        int orig = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), fd;

        ck_assert_int_ge(orig, 0);
        ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
        fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        /* What the app must see of it: a setting of this namespace's own (always), and
         * an interface pair (veth: if the kernel has the module). */
        ck_assert_int_eq(write_string_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_default_ttl", "77"), 0);
        (void)!system("ip link add oci-veth0 type veth peer name oci-veth1 >/dev/null 2>&1");
        ck_assert_int_eq(setns(orig, CLONE_NEWNET), 0);
        close(orig);
        return fcntl(fd, F_DUPFD_CLOEXEC, 20);
}

START_TEST(test_join_netns_share_uts)
{
        _cleanup_free_ char *out = NULL, *want_net = NULL, *want_uts = NULL, *bad_ipc = NULL;
        _cleanup_close_ int netns = -EBADF;
        char host[256] = "", host_after[256] = "";
        bool have_veth;
        struct stat st;
        Sandbox *s;
        Run r;

        REQUIRE_ROOT();
        netns = make_netns();
        ck_assert_int_eq(fstat(netns, &st), 0);
        /* Did the veth pair come? (ip and the module: not on every host.) */
        {
                _cleanup_free_ char *cmd = NULL;

                ck_assert_int_ge(asprintf(&cmd,
                                          "nsenter --net=/proc/%d/fd/%d ip link show oci-veth0 "
                                          ">/dev/null 2>&1",
                                          (int)getpid(), netns),
                                 0);
                have_veth = system(cmd) == 0;
        }
        ck_assert_int_eq(gethostname(host, sizeof host), 0);
        SandboxNamespace ns[] = {
                {CLONE_NEWNS, -1},     {CLONE_NEWPID, -1},    {CLONE_NEWIPC, -1},
                {CLONE_NEWNET, netns}, {CLONE_NEWCGROUP, -1}, {CLONE_NEWUSER, -1},
        };
        run_init(&r, 9,
                 "readlink /proc/self/ns/net /proc/self/ns/uts /proc/self/ns/ipc\n"
                 "cat /proc/net/dev\nhostname\necho ttl=$(cat /proc/sys/net/ipv4/ip_default_ttl)");
        r.spec.namespaces = ns;
        r.spec.n_namespaces = ELEMENTSOF(ns);
        s = run_spawn(&r);
        out = run_output(&r, s, 0);
        ck_assert_int_ge(asprintf(&want_net, "net:[%lu]", (unsigned long)st.st_ino), 0);
        ck_assert_int_ge(asprintf(&want_uts, "uts:[%lu]", (unsigned long)own_ns("uts")), 0);
        ck_assert_int_ge(asprintf(&bad_ipc, "ipc:[%lu]", (unsigned long)own_ns("ipc")), 0);
        ck_assert_msg(strstr(out, want_net), "not in the joined netns (%s): %s", want_net, out);
        ck_assert_msg(strstr(out, want_uts), "uts not shared (%s): %s", want_uts, out);
        ck_assert_msg(!strstr(out, bad_ipc), "ipc not new: %s", out);
        ck_assert_msg(strstr(out, "ttl=77"), "the joined namespace's setting: %s", out);
        if (have_veth)
                ck_assert_msg(strstr(out, "oci-veth0") && strstr(out, "oci-veth1"),
                              "the joined interfaces: %s", out);
        /* The shared uts namespace was not renamed "t-oci". */
        ck_assert_msg(strstr(out, host), "hostname: %s", out);
        ck_assert_int_eq(gethostname(host_after, sizeof host_after), 0);
        ck_assert_str_eq(host, host_after);
        sandbox_free(s);
        run_done(&r);
}
END_TEST

/* Without a user namespace the app has host ids (the OCI compat policy's case). */
START_TEST(test_no_userns_host_ids)
{
        SandboxNamespace ns[] = {
                {CLONE_NEWNS, -1},  {CLONE_NEWPID, -1}, {CLONE_NEWIPC, -1},
                {CLONE_NEWUTS, -1}, {CLONE_NEWNET, -1}, {CLONE_NEWCGROUP, -1},
        };
        _cleanup_free_ char *out = NULL, *want = NULL, *want_ids = NULL;
        Sandbox *s;
        char buf[64];
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 10, STATUS_APP "\nreadlink /proc/self/ns/user\nhostname");
        r.spec.namespaces = ns;
        r.spec.n_namespaces = ELEMENTSOF(ns);
        r.spec.ids_set = true;
        r.spec.app_uid = TEST_HOST_UID(10);
        r.spec.app_gid = TEST_HOST_UID(10);
        s = run_spawn(&r);
        out = run_output(&r, s, 0);
        ck_assert_int_ge(asprintf(&want, "uid=%u gid=%u", (unsigned)TEST_HOST_UID(10),
                                  (unsigned)TEST_HOST_UID(10)),
                         0);
        ck_assert_msg(strstr(out, want), "%s", out);
        want_ids = TAKE_PTR(want);
        ck_assert_int_ge(asprintf(&want, "user:[%lu]", (unsigned long)own_ns("user")), 0);
        ck_assert_msg(strstr(out, want), "user namespace not shared: %s", out);
        ck_assert_msg(strstr(out, "t-oci"), "uts new: %s", out);
        ck_assert_uint_eq(hex_field(out, "CapEff"), 0);
        ck_assert_uint_eq(hex_field(out, "CapBnd"), 0);
        ck_assert_str_eq(field(out, "NoNewPrivs", buf, sizeof buf), "1");
        sandbox_free(s);
        run_done(&r);

        /* Ids unset: the app's host ids, not SANDBOX_UID (host uid 1000). */
        run_init(&r, 10, STATUS_APP);
        r.spec.namespaces = ns;
        r.spec.n_namespaces = ELEMENTSOF(ns);
        s = run_spawn(&r);
        free(out);
        out = run_output(&r, s, 0);
        ck_assert_msg(strstr(out, want_ids), "%s", out);
        sandbox_free(s);
        run_done(&r);
}
END_TEST

/* A user namespace of the test's own (a child unshares it, we map it, it exits; the fd
 * keeps it): 0..65535 inside are host ids from base. Returns its fd. */
static int make_userns(uid_t base)
{
        _cleanup_free_ char *path = NULL;
        char map[64], c;
        int ready[2], done[2], fd;
        pid_t pid;

        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(done, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(ready[0]);
                close(done[1]);
                if (unshare(CLONE_NEWUSER) < 0) {
                        fprintf(stderr, "unshare(CLONE_NEWUSER): %m\n");
                        _exit(1);
                }
                if (write(ready[1], "u", 1) != 1)
                        _exit(1);
                _exit(read(done[0], &c, 1) == 0 ? 0 : 1); /* until the parent closes */
        }
        close(ready[1]);
        close(done[0]);
        ck_assert_int_eq(read(ready[0], &c, 1), 1);
        close(ready[0]);
        snprintf(map, sizeof map, "0 %u 65536\n", (unsigned)base);
        ck_assert_int_ge(asprintf(&path, "/proc/%d/uid_map", (int)pid), 0);
        ck_assert_int_eq(write_string_at(AT_FDCWD, path, map), 0);
        free(path);
        ck_assert_int_ge(asprintf(&path, "/proc/%d/gid_map", (int)pid), 0);
        ck_assert_int_eq(write_string_at(AT_FDCWD, path, map), 0);
        free(path);
        ck_assert_int_ge(asprintf(&path, "/proc/%d/ns/user", (int)pid), 0);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        close(done[1]);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        return fcntl(fd, F_DUPFD_CLOEXEC, 20);
}

/* A joined user namespace: its maps, no new ones written; the app as uid 1000 there. */
START_TEST(test_join_userns)
{
        _cleanup_free_ char *out = NULL, *want = NULL;
        _cleanup_close_ int userns = -EBADF;
        struct stat st;
        Sandbox *s;
        Run r;

        REQUIRE_ROOT();
        userns = make_userns(0x7ffd0000u);
        ck_assert_int_eq(fstat(userns, &st), 0);
        SandboxNamespace ns[] = {
                {CLONE_NEWNS, -1},       {CLONE_NEWPID, -1}, {CLONE_NEWIPC, -1},
                {CLONE_NEWUTS, -1},      {CLONE_NEWNET, -1}, {CLONE_NEWCGROUP, -1},
                {CLONE_NEWUSER, userns},
        };
        run_init(&r, 17, STATUS_APP "\nreadlink /proc/self/ns/user\ncat /proc/self/uid_map");
        r.spec.namespaces = ns;
        r.spec.n_namespaces = ELEMENTSOF(ns);
        s = run_spawn(&r);
        out = run_output(&r, s, 0);
        ck_assert_msg(strstr(out, "uid=1000 gid=1000"), "%s", out);
        ck_assert_int_ge(asprintf(&want, "user:[%lu]", (unsigned long)st.st_ino), 0);
        ck_assert_msg(strstr(out, want), "not in the joined user namespace: %s", out);
        free(want);
        ck_assert_int_ge(asprintf(&want, "%10u %10u %10u", 0u, 0x7ffd0000u, 65536u), 0);
        ck_assert_msg(strstr(out, want), "its map: %s", out);
        ck_assert_uint_eq(hex_field(out, "CapEff"), 0);
        ck_assert_uint_eq(hex_field(out, "CapBnd"), 0);
        sandbox_free(s);
        run_done(&r);
}
END_TEST

START_TEST(test_bad_namespaces_refused)
{
        SandboxNamespace no_mnt[] = {{CLONE_NEWPID, -1}};
        SandboxNamespace no_pid[] = {{CLONE_NEWNS, -1}};
        SandboxNamespace twice[] = {{CLONE_NEWNS, -1}, {CLONE_NEWPID, -1}, {CLONE_NEWNS, -1}};
        SandboxNamespace bogus[] = {{CLONE_NEWNS, -1}, {CLONE_NEWPID, -1}, {CLONE_VM, -1}};
        const struct {
                SandboxNamespace *ns;
                size_t n;
                const char *detail;
        } cases[] = {
                {no_mnt, 1, "mount namespace must be a new one"},
                {no_pid, 1, "pid namespace must be a new one"},
                {twice, 3, "listed twice"},
                {bogus, 3, "namespace 2"},
        };
        Run r;

        REQUIRE_ROOT();
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                run_init(&r, 11, "true");
                r.spec.namespaces = cases[i].ns;
                r.spec.n_namespaces = cases[i].n;
                expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, cases[i].detail);
                run_done(&r);
        }
}
END_TEST

/* ---- the exec fifo gate ----------------------------------------------------- */

/* The one child of init (the app), by /proc. */
static pid_t app_host_pid(pid_t init)
{
        _cleanup_free_ char *path = NULL, *text = NULL;

        ck_assert_int_ge(asprintf(&path, "/proc/%d/task/%d/children", (int)init, (int)init), 0);
        ck_assert_int_eq(read_file_at(AT_FDCWD, path, 4096, &text, NULL), 0);
        return (pid_t)strtol(text, NULL, 10);
}

static int make_fifo(char *path, size_t size)
{
        int fd;

        snprintf(path, size, "%s/exec.fifo", app_dir);
        (void)unlink(path);
        ck_assert_int_eq(mkfifo(path, 0622), 0);
        ck_assert_int_eq(chmod(path, 0622), 0); /* past the umask: the app's uid writes */
        fd = open(path, O_PATH | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        return fcntl(fd, F_DUPFD_CLOEXEC, 20);
}

START_TEST(test_start_gate)
{
        _cleanup_free_ char *out = NULL, *exe = NULL;
        _cleanup_close_ int fifo = -EBADF, reader = -EBADF;
        char path[PATH_MAX], target[PATH_MAX] = "", self[PATH_MAX] = "", c = 0;
        struct pollfd p;
        Sandbox *s;
        pid_t app;
        Run r;

        REQUIRE_ROOT();
        fifo = make_fifo(path, sizeof path);
        run_init(&r, 12, "echo ran");
        r.spec.start_fifo_fd = fifo;
        s = run_spawn(&r);
        /* Returned, and the app has not run: not exec'd (its exe is still ours, a
         * fork of init), nothing written. */
        app = app_host_pid(s->pid);
        ck_assert_int_gt(app, 0);
        ck_assert_int_ge(asprintf(&exe, "/proc/%d/exe", (int)app), 0);
        ck_assert_int_gt(readlink(exe, target, sizeof target - 1), 0);
        ck_assert_int_gt(readlink("/proc/self/exe", self, sizeof self - 1), 0);
        ck_assert_str_eq(target, self);
        p = (struct pollfd){.fd = r.out[0], .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 0), 0);
        /* `start`: open for reading (the app's open for writing completes), one byte. */
        reader = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(reader, 0);
        ck_assert_int_eq(read(reader, &c, 1), 1);
        ck_assert_int_eq(c, '0');
        out = run_output(&r, s, 0);
        ck_assert_str_eq(out, "ran\n");
        sandbox_free(s);
        run_done(&r);
}
END_TEST

/* A missing entry fails the spawn (create), not the start; an app killed at its
 * gate is reported as killed. */
START_TEST(test_start_gate_failures)
{
        _cleanup_close_ int fifo = -EBADF;
        char path[PATH_MAX];
        SandboxExit e = {};
        Sandbox *s;
        Run r;

        REQUIRE_ROOT();
        fifo = make_fifo(path, sizeof path);
        run_init(&r, 13, "true");
        r.spec.start_fifo_fd = fifo;
        r.spec.exec_path = "/app/missing";
        expect_fail(&r, -ENOENT, SANDBOX_STEP_EXEC, "missing");
        run_done(&r);

        run_init(&r, 13, "echo ran");
        r.spec.start_fifo_fd = fifo;
        s = run_spawn(&r);
        ck_assert_int_eq(sandbox_signal(s, SIGTERM), 0);
        ck_assert_int_eq(sandbox_wait(s, &e), 0);
        ck_assert_int_eq(e.code, CLD_KILLED);
        ck_assert_int_eq(e.status, SIGTERM);
        sandbox_free(s);
        run_done(&r);
}
END_TEST

/* An entry gone between create and start: the execve fails after STARTED, which the
 * app can only say on its stderr, and it exits 127 (runc's way). */
START_TEST(test_start_gate_exec_fails_after_start)
{
        _cleanup_free_ char *out = NULL, *script = NULL;
        _cleanup_close_ int fifo = -EBADF, reader = -EBADF;
        char path[PATH_MAX], c = 0;
        Sandbox *s;
        Run r;

        REQUIRE_ROOT();
        fifo = make_fifo(path, sizeof path);
        run_init(&r, 18, "echo ran");
        r.spec.start_fifo_fd = fifo;
        s = run_spawn(&r);
        ck_assert_int_ge(asprintf(&script, "%s/app.sh", app_dir), 0);
        ck_assert_int_eq(unlink(script), 0);
        reader = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(reader, 0);
        ck_assert_int_eq(read(reader, &c, 1), 1);
        out = run_output(&r, s, 127);
        /* runc's words (no cella prefix, no manifest advice), then the fact. */
        ck_assert_msg(strstr(out, "exec: \"") && strstr(out, "no such file or directory") &&
                              strstr(out, "app.sh does not exist") && !strstr(out, "manifest"),
                      "stderr: %s", out);
        ck_assert_msg(!strstr(out, "ran"), "%s", out);
        sandbox_free(s);
        run_done(&r);
}
END_TEST

/* ---- detached --------------------------------------------------------------- */

/* As cella-oci create runs: a process spawns detached, lets go and exits; init
 * lives on, reparented to us (a subreaper, as conmon is), and its status is the
 * app's. */
START_TEST(test_detached_spawner_exits)
{
        int ready[2], status = 0;
        pid_t spawner, init = 0;
        char line[16] = "";
        Run r;

        REQUIRE_ROOT();
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        run_init(&r, 19, "read x; echo got $x; exit 9");
        r.spec.survive_parent = true;
        r.spec.detached = true;
        spawner = fork();
        ck_assert_int_ge(spawner, 0);
        if (spawner == 0) {
                SandboxError err = {};
                Sandbox *s = NULL;
                pid_t pid;

                if (sandbox_spawn(&r.spec, &s, &err) < 0)
                        _exit(1);
                pid = sandbox_release(s);
                _exit(write(ready[1], &pid, sizeof pid) == sizeof pid ? 0 : 1);
        }
        close(ready[1]);
        r.out[1] = safe_close(r.out[1]);
        r.in[0] = safe_close(r.in[0]);
        ck_assert_int_eq(read(ready[0], &init, sizeof init), (ssize_t)sizeof init);
        close(ready[0]);
        ck_assert_int_eq(waitpid(spawner, &status, 0), spawner);
        ck_assert_int_eq(status, 0);
        /* The spawner is gone (with its ctl end): the app still answers. */
        ck_assert_int_eq(loop_write(r.in[1], "hi\n", 3), 0);
        ck_assert_int_eq(read(r.out[0], line, sizeof line - 1), 7);
        ck_assert_str_eq(line, "got hi\n");
        ck_assert_int_eq(waitpid(init, &status, 0), init);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 9, "init ended with %#x", status);
        run_done(&r);
}
END_TEST

/* The app outlives ctl and its Sandbox; init, reaped by us, exits with its status. */
START_TEST(test_detached)
{
        const char *inits[] = {CELLA_INIT_PATH, NULL};

        REQUIRE_ROOT();
        for (size_t i = 0; i < ELEMENTSOF(inits); i++) {
                char line[16] = "";
                int status = 0;
                Sandbox *s;
                pid_t init;
                Run r;

                run_init(&r, 14, "read x; echo got $x; exit 7");
                r.spec.init_path = inits[i];
                r.spec.survive_parent = true;
                r.spec.detached = true;
                s = run_spawn(&r);
                /* With cella-init: once pid 1 runs it (its "detached" argument). */
                while (inits[i] && s->init_exec == 0) {
                        struct pollfd p = {.fd = s->ctl_fd, .events = POLLIN};

                        ck_assert_int_eq(poll(&p, 1, 10000), 1);
                        ck_assert_int_eq(sandbox_process(s), 0);
                }
                ck_assert_int_eq(s->init_exec, inits[i] ? 1 : 0);
                init = sandbox_release(s); /* ctl closed: a sandbox not detached dies now */
                ck_assert_int_gt(init, 0);
                ck_assert_int_eq(loop_write(r.in[1], "hi\n", 3), 0);
                ck_assert_int_eq(read(r.out[0], line, sizeof line - 1), 7);
                ck_assert_str_eq(line, "got hi\n");
                ck_assert_int_eq(waitpid(init, &status, 0), init);
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 7,
                              "init (%s) ended with %#x", inits[i] ?: "built in", status);
                run_done(&r);
        }

        /* Killed by signal N: 128+N. */
        {
                int status = 0;
                Sandbox *s;
                pid_t init;
                Run r;

                run_init(&r, 14, "kill -TERM $$");
                r.spec.survive_parent = true;
                r.spec.detached = true;
                s = run_spawn(&r);
                init = sandbox_release(s);
                ck_assert_int_eq(waitpid(init, &status, 0), init);
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM,
                              "init ended with %#x", status);
                run_done(&r);
        }
        /* detached needs survive_parent. */
        {
                Run r;

                run_init(&r, 14, "true");
                r.spec.detached = true;
                expect_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "survive_parent");
                run_done(&r);
        }
}
END_TEST

/* A sandbox that is not detached still dies when ctl goes (survive_parent alone). */
START_TEST(test_not_detached_dies_with_ctl)
{
        int status = 0;
        Sandbox *s;
        pid_t init;
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 15, "read x; exit 7");
        r.spec.survive_parent = true;
        s = run_spawn(&r);
        init = sandbox_release(s);
        ck_assert_int_eq(waitpid(init, &status, 0), init);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "init ended with %#x", status);
        run_done(&r);
}
END_TEST

/* ---- sandbox_enter with the container's ids ------------------------------------ */

START_TEST(test_enter_ids_and_caps)
{
        static const gid_t groups[] = {4000};
        const SandboxCaps caps = {
                .bounding = CAP(CAP_NET_BIND_SERVICE),
                .permitted = CAP(CAP_NET_BIND_SERVICE),
                .effective = CAP(CAP_NET_BIND_SERVICE),
                .inheritable = CAP(CAP_NET_BIND_SERVICE),
                .ambient = CAP(CAP_NET_BIND_SERVICE),
        };
        char *argv[] = {"/bin/sh", "-c", STATUS_APP, NULL};
        _cleanup_free_ char *out = NULL;
        int pipefd[2], status = 0, pidfd = -EBADF;
        _cleanup_close_ int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        SandboxError err = {};
        SandboxExit e = {};
        char buf[64];
        size_t n = 0;
        Sandbox *s;
        pid_t pid = 0;
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 16, "read x");
        r.spec.host_ids_base = TEST_IDS_BASE;
        r.spec.app_groups = groups; /* setgroups "allow" */
        r.spec.n_app_groups = 1;
        s = run_spawn(&r);
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        ck_assert_msg(sandbox_enter(&(SandboxEnter){.pidfd = s->pidfd,
                                                    .pid = s->pid,
                                                    .seccomp = seccomp_prog,
                                                    .argv = argv,
                                                    .envp = test_envp,
                                                    .stdio = {null, pipefd[1], pipefd[1]},
                                                    .tty_socket = -1,
                                                    .uid = 2000,
                                                    .gid = 3000,
                                                    .ids_set = true,
                                                    .groups = groups,
                                                    .n_groups = 1,
                                                    .caps = &caps},
                                    &pid, &pidfd, &err) == 0,
                      "sandbox_enter: %s at %s", err.detail, sandbox_step_to_string(err.step));
        close(pipefd[1]);
        ck_assert_int_eq(read_full_fd(pipefd[0], OUTPUT_MAX, &out, &n), 0);
        close(pipefd[0]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        close(pidfd);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
        ck_assert_msg(strstr(out, "uid=2000 gid=3000 groups=3000 4000"), "%s", out);
        ck_assert_uint_eq(hex_field(out, "CapAmb"), caps.ambient);
        ck_assert_uint_eq(hex_field(out, "CapEff"), caps.ambient);
        ck_assert_uint_eq(hex_field(out, "CapBnd"), caps.bounding);
        ck_assert_str_eq(field(out, "NoNewPrivs", buf, sizeof buf), "1");
        ck_assert_str_eq(field(out, "Seccomp", buf, sizeof buf), "2");
        r.in[1] = safe_close(r.in[1]);
        ck_assert_int_eq(sandbox_wait(s, &e), 0);
        sandbox_free(s);
        run_done(&r);
}
END_TEST

/* A command entered in a container without a user namespace: the host's user
 * namespace (ns_flags leaves it out), the container's network one, the given ids. */
START_TEST(test_enter_ns_flags)
{
        SandboxNamespace ns[] = {
                {CLONE_NEWNS, -1},  {CLONE_NEWPID, -1}, {CLONE_NEWIPC, -1},
                {CLONE_NEWUTS, -1}, {CLONE_NEWNET, -1}, {CLONE_NEWCGROUP, -1},
        };
        char *argv[] = {"/bin/sh", "-c",
                        "echo uid=$(id -u) gid=$(id -g); readlink /proc/self/ns/user "
                        "/proc/self/ns/net",
                        NULL};
        _cleanup_free_ char *out = NULL, *want = NULL;
        _cleanup_close_ int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int pipefd[2], status = 0, pidfd = -EBADF;
        SandboxEnter e;
        SandboxError err = {};
        SandboxExit ex = {};
        char nspath[64];
        struct stat st;
        size_t n = 0;
        Sandbox *s;
        pid_t pid = 0;
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 20, "read x");
        r.spec.namespaces = ns;
        r.spec.n_namespaces = ELEMENTSOF(ns);
        s = run_spawn(&r);
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        e = (SandboxEnter){.pidfd = s->pidfd,
                           .pid = s->pid,
                           .seccomp = seccomp_prog,
                           .argv = argv,
                           .envp = test_envp,
                           .stdio = {null, pipefd[1], pipefd[1]},
                           .tty_socket = -1,
                           .ns_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                                       CLONE_NEWNET | CLONE_NEWCGROUP};
        /* Without ids it would be SANDBOX_UID on the host: refused. */
        ck_assert_int_eq(sandbox_enter(&e, &pid, &pidfd, &err), -EINVAL);
        ck_assert_msg(strstr(err.detail, "ids must be given"), "%s", err.detail);
        e.ids_set = true;
        e.uid = TEST_HOST_UID(20);
        e.gid = TEST_HOST_UID(20);
        ck_assert_msg(sandbox_enter(&e, &pid, &pidfd, &err) == 0, "sandbox_enter: %s at %s",
                      err.detail, sandbox_step_to_string(err.step));
        close(pipefd[1]);
        ck_assert_int_eq(read_full_fd(pipefd[0], OUTPUT_MAX, &out, &n), 0);
        close(pipefd[0]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        close(pidfd);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
        ck_assert_int_ge(asprintf(&want, "uid=%u gid=%u", (unsigned)TEST_HOST_UID(20),
                                  (unsigned)TEST_HOST_UID(20)),
                         0);
        ck_assert_msg(strstr(out, want), "%s", out);
        free(want);
        ck_assert_int_ge(asprintf(&want, "user:[%lu]", (unsigned long)own_ns("user")), 0);
        ck_assert_msg(strstr(out, want), "not the host's user namespace: %s", out);
        free(want);
        snprintf(nspath, sizeof nspath, "/proc/%d/ns/net", (int)s->pid);
        ck_assert_int_eq(stat(nspath, &st), 0);
        ck_assert_int_ge(asprintf(&want, "net:[%lu]", (unsigned long)st.st_ino), 0);
        ck_assert_msg(strstr(out, want), "not the container's network namespace: %s", out);
        r.in[1] = safe_close(r.in[1]);
        ck_assert_int_eq(sandbox_wait(s, &ex), 0);
        sandbox_free(s);
        run_done(&r);
}
END_TEST

int main(void)
{
        Suite *suite = suite_create("sandbox-oci");
        TCase *tc = tcase_create("oci");
        SRunner *sr;

        if (skip_init() < 0)
                return EXIT_FAILURE;
        tcase_add_unchecked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_app_ids_and_groups);
        tcase_add_test(tc, test_app_ids_must_be_mapped);
        tcase_add_test(tc, test_explicit_maps);
        tcase_add_test(tc, test_bad_maps_refused);
        tcase_add_test(tc, test_caps);
        tcase_add_test(tc, test_allow_new_privs);
        tcase_add_test(tc, test_umask_and_rlimits);
        tcase_add_test(tc, test_join_netns_share_uts);
        tcase_add_test(tc, test_no_userns_host_ids);
        tcase_add_test(tc, test_join_userns);
        tcase_add_test(tc, test_bad_namespaces_refused);
        tcase_add_test(tc, test_start_gate);
        tcase_add_test(tc, test_start_gate_failures);
        tcase_add_test(tc, test_start_gate_exec_fails_after_start);
        tcase_add_test(tc, test_detached);
        tcase_add_test(tc, test_detached_spawner_exits);
        tcase_add_test(tc, test_not_detached_dies_with_ctl);
        tcase_add_test(tc, test_enter_ids_and_caps);
        tcase_add_test(tc, test_enter_ns_flags);
        suite_add_tcase(suite, tc);
        {
                TCase *c = tcase_create("rlimit-hard");

                tcase_set_tags(c, "alone");
                tcase_add_unchecked_fixture(c, setup, teardown);
                tcase_set_timeout(c, 60);
                tcase_add_test(c, test_rlimit_over_hard_refused);
                suite_add_tcase(suite, c);
        }
        sr = srunner_create(suite);
        return skip_run(sr);
}
