/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sandbox library on its own, with no supervisor, the way another front end (an
 * OCI runtime) would drive it: a SandboxSpec built by hand, sandbox_spawn(), then
 * sandbox_signal/sandbox_wait/sandbox_free. Needs root (it writes uid maps, mounts
 * and creates cgroups); otherwise every test prints "SKIP: <reason>" and the run
 * exits 77 (skipped).
 *
 * The apps are small /bin/sh scripts in a temporary directory bound read-only as
 * /app; their stdout and stderr go to a pipe the test reads.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fdpass.h"
#include "base/fileio.h"
#include "base/macro.h"
#include "skip.h"
#include "memory/reading.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox-internal.h" /* userns_format_map */
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"
#include "test-util.h"

#define MiB (UINT64_C(1) << 20)

/* Host uids for the apps: 0x7ffe0000 + n, used by nothing on the test hosts and outside
 * cella's default ranges (0x70000000 + 65536 for uids from before blocks, blocks from
 * 0x70010000 to 0x7ffdffff), so no test shares a uid with an app. */
#define TEST_HOST_UID(n) ((uid_t)(0x7ffe0000u + (n)))
/* A block of host ids for the tests, past cella's default ranges too. */
#define TEST_IDS_BASE ((uid_t)0x7fff0000u)

#define TEST_HOSTNAME "t-sandbox"
#define OUTPUT_MAX    (64 * 1024)

static char app_dir[] = "/tmp/test-sandbox-XXXXXX";
static SeccompProgram *seccomp_prog;
static char *const test_envp[] = {"PATH=/usr/bin:/bin", "HOME=/", NULL};

/* ---- helpers ------------------------------------------------------------------------ */

/* The running test's name for messages (its function is <name>_fn). */
#define TEST_NAME tcase_name()

static void manager_freep(CgroupManager **m)
{
        cgroup_manager_free(*m);
}

/* Runs in the runner process, once: the /app directory and the seccomp filter. */
static void setup(void)
{
        if (geteuid() != 0)
                return;
        /* Each test case runs this once: a fresh template each time. */
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

/* Writes app_dir/name ("#!/bin/sh\n" + body) with the given mode. */
static void write_script(const char *name, const char *body, mode_t mode)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        _cleanup_close_ int fd = -EBADF;

        ck_assert_int_ge(asprintf(&path, "%s/%s", app_dir, name), 0);
        ck_assert_int_ge(asprintf(&text, "#!/bin/sh\n%s\n", body), 0);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        ck_assert_msg(fd >= 0, "create %s: %m", path);
        ck_assert_int_eq(loop_write(fd, text, strlen(text)), 0);
        ck_assert_int_eq(fchmod(fd, mode), 0); /* past the umask */
}

/* A test's sandbox: the spec and what it points to. */
typedef struct Run {
        SandboxSpec spec;
        SandboxBind bind;
        char exec_path[64];
        char *argv[8];
        int out[2]; /* stdout and stderr of the app */
} Run;

/*
 * Fills r to run /app/<script>, or the program script names if it is absolute, with
 * the arguments that follow (NULL-terminated, at most 6), as host uid TEST_HOST_UID(n);
 * stdout and stderr go to r->out.
 */
static void run_init(Run *r, unsigned n, const char *script, ...)
{
        va_list ap;
        size_t i = 1;

        *r = (Run){};
        r->bind = (SandboxBind){.source = app_dir, .target = "/app"};
        if (script[0] == '/')
                snprintf(r->exec_path, sizeof r->exec_path, "%s", script);
        else
                snprintf(r->exec_path, sizeof r->exec_path, "/app/%s", script);
        r->argv[0] = strrchr(r->exec_path, '/') + 1;
        va_start(ap, script);
        for (char *a; i < ELEMENTSOF(r->argv) - 1 && (a = va_arg(ap, char *)); i++)
                r->argv[i] = a;
        va_end(ap);
        r->argv[i] = NULL;
        ck_assert_int_eq(pipe2(r->out, O_CLOEXEC), 0);
        r->spec = (SandboxSpec){
                .hostname = TEST_HOSTNAME,
                .host_uid = TEST_HOST_UID(n),
                .host_gid = TEST_HOST_UID(n),
                .binds = &r->bind,
                .n_binds = 1,
                .exec_path = r->exec_path,
                .argv = r->argv,
                .envp = test_envp,
                .seccomp = seccomp_prog,
                .stdio = {-1, r->out[1], r->out[1]},
                .channel_fd = -1,
                /* As cella runs them: pid 1 becomes cella-init once the app runs
                 * (test_init_builtin covers the loop without it). */
                .init_path = CELLA_INIT_PATH,
        };
}

static void run_done(Run *r)
{
        r->out[0] = safe_close(r->out[0]);
        r->out[1] = safe_close(r->out[1]);
}

/* Spawns r->spec; fails the test with the step and detail if that fails. Closes our
 * copy of the output's write end, so reading it ends when the sandbox does. */
static Sandbox *run_spawn(Run *r)
{
        SandboxError err = {};
        Sandbox *s = NULL;
        int k = sandbox_spawn(&r->spec, &s, &err);

        ck_assert_msg(k == 0, "sandbox_spawn: %s at step %s: %s", strerror(-k),
                      sandbox_step_to_string(err.step), err.detail);
        ck_assert_ptr_nonnull(s);
        r->out[1] = safe_close(r->out[1]);
        return s;
}

/* Everything the app wrote until the sandbox closed the pipe. Caller frees. */
static char *read_output(Run *r)
{
        char *buf = NULL;
        size_t n = 0;

        ck_assert_int_eq(read_full_fd(r->out[0], OUTPUT_MAX, &buf, &n), 0);
        return buf;
}

/* Reads one line (without the newline) from the app's output. */
static void read_line(Run *r, char *buf, size_t size)
{
        size_t n = 0;

        while (n + 1 < size) {
                ssize_t k = read(r->out[0], buf + n, 1);

                ck_assert_msg(k == 1, "read a line from the app: %s",
                              k < 0 ? strerror(errno) : "EOF");
                if (buf[n] == '\n')
                        break;
                n++;
        }
        buf[n] = 0;
}

static SandboxExit run_wait(Sandbox *s)
{
        SandboxExit e = {};

        ck_assert_int_eq(sandbox_wait(s, &e), 0);
        ck_assert(s->exited);
        return e;
}

/* The test process has no child left: nothing spawned survived, nothing is unreaped. */
static void assert_no_children(void)
{
        errno = 0;
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
        ck_assert_int_eq(errno, ECHILD);
}

/* Spawns r->spec expecting it to fail with r_expected (a negative errno) at step, with
 * detail_has (if not NULL) in the detail; then nothing of it may be left. */
static void expect_spawn_fail(Run *r, int r_expected, SandboxStep step, const char *detail_has)
{
        SandboxError err = {.step = _SANDBOX_STEP_MAX, .error = -1};
        Sandbox *s = NULL;
        int k = sandbox_spawn(&r->spec, &s, &err);

        r->out[1] = safe_close(r->out[1]);
        ck_assert_msg(k == r_expected, "sandbox_spawn gave %d (%s at %s: %s), expected %d", k,
                      strerror(-k), sandbox_step_to_string(err.step), err.detail, r_expected);
        ck_assert_ptr_null(s);
        ck_assert_msg(err.step == step, "step %s, expected %s (%s)",
                      sandbox_step_to_string(err.step), sandbox_step_to_string(step), err.detail);
        ck_assert_int_eq(err.error, -r_expected);
        ck_assert_msg(err.detail[0], "no detail");
        if (detail_has)
                ck_assert_msg(strstr(err.detail, detail_has), "detail \"%s\" does not name %s",
                              err.detail, detail_has);
        assert_no_children();
}

/* pid's children (host pids) from /proc/<pid>/task/<pid>/children; returns how many. */
static size_t children_of(pid_t pid, pid_t *ret, size_t max)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t n = 0;
        char *p, *end;

        ck_assert_int_ge(asprintf(&path, "/proc/%d/task/%d/children", (int)pid, (int)pid), 0);
        ck_assert_int_eq(read_file_at(AT_FDCWD, path, 4096, &text, NULL), 0);
        for (p = text; n < max; p = end) {
                long v = strtol(p, &end, 10);

                if (end == p)
                        break;
                ret[n++] = (pid_t)v;
        }
        return n;
}

/* The state letter of /proc/<pid>/stat, or 0 if the process is gone. */
static char proc_state(pid_t pid)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        char *p;

        ck_assert_int_ge(asprintf(&path, "/proc/%d/stat", (int)pid), 0);
        if (read_file_at(AT_FDCWD, path, 4096, &text, NULL) < 0)
                return 0;
        p = strrchr(text, ')'); /* comm may hold spaces and parentheses */
        ck_assert_ptr_nonnull(p);
        return p[2];
}

/* Waits until s learned what its pid 1 runs (Sandbox.init_exec) or the sandbox
 * ended; returns init_exec. */
static int wait_init(Sandbox *s)
{
        while (s->init_exec == 0 && !s->exited) {
                struct pollfd p = {.fd = s->ctl_fd, .events = POLLIN};

                ck_assert_int_eq(poll(&p, 1, 10000), 1);
                ck_assert_int_ge(sandbox_process(s), 0);
        }
        return s->init_exec;
}

/* The value of "key:" in /proc/<pid>/<file> as a number (-1: no such line). */
static long proc_field(pid_t pid, const char *file, const char *key)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t k = strlen(key);

        ck_assert_int_ge(asprintf(&path, "/proc/%d/%s", (int)pid, file), 0);
        ck_assert_int_eq(read_file_at(AT_FDCWD, path, 64 * 1024, &text, NULL), 0);
        for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
                if (strncmp(l, key, k) == 0 && l[k] == ':')
                        return strtol(l + k + 1, NULL, 10);
        return -1;
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(test_exit_status)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL;
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 1, "/bin/sh", "-c", "echo ok; exit 3", NULL);
        s = run_spawn(&r);
        /* init is 1 in the sandbox's pid namespace; the app is its first child. */
        ck_assert_int_eq(s->app_pid, 2);
        ck_assert_int_gt(s->pid, 1);
        ck_assert_int_ge(s->pidfd, 0);
        ck_assert_ptr_null(s->cgroup);
        out = read_output(&r);
        ck_assert_str_eq(out, "ok\n");
        e = run_wait(s);
        ck_assert_int_eq(e.code, CLD_EXITED);
        ck_assert_int_eq(e.status, 3);
        ck_assert(!e.oom_killed);
        ck_assert_uint_eq(e.oom_kills, 0);
        /* Waiting again gives the same answer, and init is reaped. */
        e = (SandboxExit){};
        ck_assert_int_eq(sandbox_wait(s, &e), 0);
        ck_assert_int_eq(e.code, CLD_EXITED);
        ck_assert_int_eq(e.status, 3);
        ck_assert_int_eq(sandbox_process(s), 1);
        ck_assert_int_eq(sandbox_signal(s, SIGTERM), -ESRCH);
        assert_no_children();
        run_done(&r);
}
END_TEST

START_TEST(test_identity)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL;
        unsigned inside, outside, count, ginside, goutside, gcount;
        char uid[32], gid[32], host[80];
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        write_script("identity.sh",
                     "id -u; id -g; hostname; cat /proc/self/uid_map; cat /proc/self/gid_map",
                     0755);
        run_init(&r, 2, "identity.sh", NULL);
        s = run_spawn(&r);
        out = read_output(&r);
        e = run_wait(s);
        ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d, output:\n%s", e.code,
                      e.status, out);
        /* uid_map lines are padded with spaces: compare the numbers. */
        ck_assert_msg(sscanf(out, "%31s %31s %79s %u %u %u %u %u %u", uid, gid, host, &inside,
                             &outside, &count, &ginside, &goutside, &gcount) == 9,
                      "output:\n%s", out);
        ck_assert_str_eq(uid, "1000");
        ck_assert_str_eq(gid, "1000");
        ck_assert_str_eq(host, TEST_HOSTNAME);
        ck_assert_uint_eq(inside, SANDBOX_UID);
        ck_assert_uint_eq(outside, TEST_HOST_UID(2));
        ck_assert_uint_eq(count, 1);
        ck_assert_uint_eq(ginside, SANDBOX_GID);
        ck_assert_uint_eq(goutside, TEST_HOST_UID(2));
        ck_assert_uint_eq(gcount, 1);
        run_done(&r);
}
END_TEST

/*
 * The app's ids with a block (SandboxSpec.host_ids_base): every id 0..65535 inside is
 * mapped, so chown and setuid to another id of the block fail with EPERM (no
 * capability), as for any unprivileged user; an id past the block stays unmapped
 * (EINVAL). Without a block only the app's own ids are mapped and the same calls
 * give EINVAL. An app whose uid predates its block (outside it) keeps that uid.
 */
static const char ids_py[] =
        "import errno, os\n"
        "open('/tmp/f', 'w').close()\n"
        "def try_(name, f):\n"
        "    try:\n"
        "        f()\n"
        "        print(name, 'ok')\n"
        "    except OSError as e:\n"
        "        print(name, errno.errorcode[e.errno])\n"
        "print(os.getuid(), os.getgid())\n"
        "for m in ('uid_map', 'gid_map'):\n"
        "    print(m, '|'.join(' '.join(l.split()) for l in open('/proc/self/' + m)))\n"
        "try_('chown-other', lambda: os.chown('/tmp/f', 2000, -1))\n"
        "try_('chown-root', lambda: os.chown('/tmp/f', 0, -1))\n"
        "try_('chgrp-other', lambda: os.chown('/tmp/f', -1, 65533))\n"
        "try_('chown-self', lambda: os.chown('/tmp/f', 1000, 1000))\n"
        "try_('chown-far', lambda: os.chown('/tmp/f', 65536, -1))\n"
        "try_('setuid-other', lambda: os.setuid(2000))\n"
        "try_('setgid-root', lambda: os.setgid(0))\n"
        "try_('setgroups', lambda: os.setgroups([1000]))\n";

static char *run_ids(unsigned n, uid_t uid, uid_t ids_base)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        char *out;
        SandboxExit e;
        Run r;

        ck_assert_int_ge(asprintf(&path, "%s/ids.py", app_dir), 0);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, ids_py, strlen(ids_py)), 0);
        run_init(&r, n, "/usr/bin/python3", "/app/ids.py", NULL);
        r.spec.host_uid = uid;
        r.spec.host_gid = uid;
        r.spec.host_ids_base = ids_base;
        s = run_spawn(&r);
        out = read_output(&r);
        e = run_wait(s);
        ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d, output:\n%s", e.code,
                      e.status, out);
        run_done(&r);
        return out;
}

START_TEST(test_identity_block)
{
        const uid_t base = TEST_IDS_BASE;
        _cleanup_free_ char *block = NULL, *legacy = NULL, *single = NULL;
        char want[512];

        REQUIRE_ROOT();
        block = run_ids(20, base + SANDBOX_UID, base);
        snprintf(want, sizeof want,
                 "1000 1000\nuid_map 0 %u %u\ngid_map 0 %u %u\n"
                 "chown-other EPERM\nchown-root EPERM\nchgrp-other EPERM\nchown-self ok\n"
                 "chown-far EINVAL\nsetuid-other EPERM\nsetgid-root EPERM\nsetgroups EPERM\n",
                 (unsigned)base, SANDBOX_IDS, (unsigned)base, SANDBOX_IDS);
        ck_assert_str_eq(block, want);

        /* A uid from before blocks, outside the block: mapped on its own. */
        legacy = run_ids(21, TEST_HOST_UID(21), base);
        snprintf(want, sizeof want,
                 "1000 1000\nuid_map 0 %u 1000|1000 %u 1|1001 %u 64535\n"
                 "gid_map 0 %u 1000|1000 %u 1|1001 %u 64535\n"
                 "chown-other EPERM\nchown-root EPERM\nchgrp-other EPERM\nchown-self ok\n"
                 "chown-far EINVAL\nsetuid-other EPERM\nsetgid-root EPERM\nsetgroups EPERM\n",
                 (unsigned)base, (unsigned)TEST_HOST_UID(21), (unsigned)base + 1001, (unsigned)base,
                 (unsigned)TEST_HOST_UID(21), (unsigned)base + 1001);
        ck_assert_str_eq(legacy, want);

        /* No block: the other ids are unmapped, and the kernel says EINVAL. */
        single = run_ids(22, TEST_HOST_UID(22), 0);
        snprintf(want, sizeof want,
                 "1000 1000\nuid_map 1000 %u 1\ngid_map 1000 %u 1\n"
                 "chown-other EINVAL\nchown-root EINVAL\nchgrp-other EINVAL\nchown-self ok\n"
                 "chown-far EINVAL\nsetuid-other EINVAL\nsetgid-root EINVAL\nsetgroups EPERM\n",
                 (unsigned)TEST_HOST_UID(22), (unsigned)TEST_HOST_UID(22));
        ck_assert_str_eq(single, want);
}
END_TEST

/* userns_format_map: the lines, and the blocks it refuses. */
START_TEST(test_format_map)
{
        char buf[160];

        ck_assert_int_eq(userns_format_map(1000, 5000, 0, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "1000 5000 1\n");
        ck_assert_int_eq(userns_format_map(1000, 0x70011000u + 1000, 0x70011000u, buf, sizeof buf),
                         0);
        ck_assert_str_eq(buf, "0 1879117824 65536\n");
        ck_assert_int_eq(userns_format_map(1000, 0x70000005u, 0x70010000u, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "0 1879113728 1000\n1000 1879048197 1\n1001 1879114729 64535\n");
        /* The app's id inside the block but not at its place: one host id twice. */
        ck_assert_int_eq(userns_format_map(1000, 0x70010005u, 0x70010000u, buf, sizeof buf),
                         -EINVAL);
        /* Never host root, never (uid_t)-1, never a block running past the top. */
        ck_assert_int_eq(userns_format_map(1000, 0, 0, buf, sizeof buf), -EINVAL);
        ck_assert_int_eq(userns_format_map(1000, UINT32_MAX, 0, buf, sizeof buf), -EINVAL);
        ck_assert_int_eq(userns_format_map(1000, 5000, 0xFFFF0001u, buf, sizeof buf), -EINVAL);
        ck_assert_int_eq(userns_format_map(SANDBOX_IDS, 5000, 0, buf, sizeof buf), -EINVAL);
        ck_assert_int_eq(userns_format_map(1000, 5000, 0x70010000u, buf, 8), -ENOBUFS);
}
END_TEST

/* SandboxSpec.prepare runs during the spawn and its uid is the one mapped. */
static int prepare_uid(SandboxSpec *spec, void *userdata)
{
        unsigned *calls = userdata;

        (*calls)++;
        spec->host_uid = TEST_HOST_UID(9);
        spec->host_gid = TEST_HOST_UID(9);
        return 0;
}

static int prepare_nothing(SandboxSpec *spec, void *userdata)
{
        (void)spec;
        (void)userdata;
        return 0;
}

static int prepare_fails(SandboxSpec *spec, void *userdata)
{
        (void)spec;
        (void)userdata;
        return -ENOSPC;
}

START_TEST(test_prepare_callback)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL;
        unsigned calls = 0, inside = 0, outside = 0, count = 0;
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        write_script("map.sh", "cat /proc/self/uid_map", 0755);
        run_init(&r, 0, "map.sh", NULL);
        r.spec.host_uid = r.spec.host_gid = 0; /* left to the callback */
        r.spec.prepare = prepare_uid;
        r.spec.prepare_userdata = &calls;
        s = run_spawn(&r);
        out = read_output(&r);
        e = run_wait(s);
        ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d:\n%s", e.code, e.status,
                      out);
        ck_assert_uint_eq(calls, 1);
        ck_assert_int_eq(sscanf(out, "%u %u %u", &inside, &outside, &count), 3);
        ck_assert_uint_eq(inside, SANDBOX_UID);
        ck_assert_uint_eq(outside, TEST_HOST_UID(9));
        ck_assert_uint_eq(count, 1);
        run_done(&r);

        /* A failing callback fails the spawn at the prepare step, with its errno,
         * and leaves no process behind. */
        run_init(&r, 0, "map.sh", NULL);
        r.spec.host_uid = r.spec.host_gid = 0;
        r.spec.prepare = prepare_fails;
        expect_spawn_fail(&r, -ENOSPC, SANDBOX_STEP_PREPARE, TEST_HOSTNAME);
        run_done(&r);

        /* So does one that succeeds but leaves the uid at 0: never host root. */
        run_init(&r, 0, "map.sh", NULL);
        r.spec.host_uid = r.spec.host_gid = 0;
        r.spec.prepare = prepare_nothing;
        expect_spawn_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "host root");
        run_done(&r);
}
END_TEST

static int write_new_file(const char *path, const char *text);

/* What test_wait_starting's starting() saw. */
typedef struct Gate {
        pid_t seen; /* spec->starting_pid */
        int out_fd; /* the app's output, our read end */
        bool early; /* the app wrote before starting() returned */
} Gate;

/* SandboxSpec.starting for test_wait_starting: records the pid it was given, looks
 * whether the app has written anything yet (it writes at once when it runs: 300 ms
 * is a bound for an app let through early, far above its start), then writes
 * /app/token, which the app prints next. */
static int starting_writes_token(SandboxSpec *spec, void *userdata)
{
        _cleanup_free_ char *path = NULL;
        Gate *g = userdata;
        struct pollfd p = {.fd = g->out_fd, .events = POLLIN};

        g->seen = spec->starting_pid;
        g->early = poll(&p, 1, 300) != 0;
        if (asprintf(&path, "%s/token", app_dir) < 0)
                return -ENOMEM;
        return write_new_file(path, "made by starting\n");
}

START_TEST(test_wait_starting)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL, *token = NULL, *plain = NULL;
        Gate gate = {};
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        ck_assert_int_ge(asprintf(&token, "%s/token", app_dir), 0);
        (void)unlink(token);
        write_script("gate.sh",
                     "echo ran; cat /app/token; cat /etc/resolv.conf; "
                     "grep ^hosts: /etc/nsswitch.conf",
                     0755);
        /* The app is forked only once starting() returned: nothing from it before,
         * and it finds the token; the jail has the resolv.conf asked for, and
         * nsswitch asks DNS. */
        run_init(&r, 0, "gate.sh", NULL);
        gate.out_fd = r.out[0];
        r.spec.starting = starting_writes_token;
        r.spec.prepare_userdata = &gate;
        r.spec.wait_starting = true;
        r.spec.resolv_conf = "nameserver 192.0.2.53\n";
        s = run_spawn(&r);
        out = read_output(&r);
        e = run_wait(s);
        ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d:\n%s", e.code, e.status,
                      out);
        ck_assert_msg(!gate.early, "the app ran before starting() returned");
        ck_assert_str_eq(out, "ran\nmade by starting\nnameserver 192.0.2.53\nhosts: files dns\n");
        /* starting() was told the sandbox's init, whose namespaces it may act on. */
        ck_assert_int_eq(gate.seen, s->pid);
        run_done(&r);
        (void)unlink(token);

        /* Without resolv_conf: none in the jail, and names come from files alone. */
        write_script("plain.sh", "ls /etc/resolv.conf 2>&1; grep ^hosts: /etc/nsswitch.conf", 0755);
        run_init(&r, 0, "plain.sh", NULL);
        sandbox_freep(&s);
        s = run_spawn(&r);
        plain = read_output(&r);
        e = run_wait(s);
        ck_assert_msg(strstr(plain, "No such file") && strstr(plain, "hosts: files\n"), "%s",
                      plain);
        run_done(&r);

        /* wait_starting with no starting() would hold the app forever: refused. */
        run_init(&r, 0, "gate.sh", NULL);
        r.spec.wait_starting = true;
        expect_spawn_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "wait_starting");
        run_done(&r);
}
END_TEST

START_TEST(test_killed_by_signal)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        write_script("suicide.sh", "kill -KILL $$; echo survived", 0755);
        run_init(&r, 3, "suicide.sh", NULL);
        s = run_spawn(&r);
        e = run_wait(s);
        ck_assert_int_eq(e.code, CLD_KILLED);
        ck_assert_int_eq(e.status, SIGKILL);
        ck_assert(!e.oom_killed); /* killed, but not by the OOM killer */
        ck_assert_uint_eq(e.oom_kills, 0);
        {
                _cleanup_free_ char *out = read_output(&r);

                ck_assert_str_eq(out, "");
        }
        run_done(&r);
}
END_TEST

START_TEST(test_signal_forwarded)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        char line[64];
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        /* dash's wait builtin returns at once on a trapped signal; a foreground
         * sleep would delay the trap until it finished. */
        write_script("trap.sh", "trap 'echo got TERM; exit 5' TERM\necho ready\nsleep 100 &\nwait",
                     0755);
        run_init(&r, 4, "trap.sh", NULL);
        s = run_spawn(&r);
        read_line(&r, line, sizeof line);
        ck_assert_str_eq(line, "ready");
        ck_assert_int_eq(sandbox_process(s), 0); /* still running */
        ck_assert_int_eq(sandbox_signal(s, SIGTERM), 0);
        e = run_wait(s);
        ck_assert_int_eq(e.code, CLD_EXITED);
        ck_assert_int_eq(e.status, 5);
        read_line(&r, line, sizeof line);
        ck_assert_str_eq(line, "got TERM");
        ck_assert_int_eq(sandbox_signal(s, SIGTERM), -ESRCH);
        run_done(&r);
}
END_TEST

/* Reads fd into buf (size bytes, NUL-terminated) until needle has come; fails the
 * test at EOF or after 10 s of silence. */
static void read_until(int fd, char *buf, size_t size, size_t *n, const char *needle)
{
        while (!strstr(buf, needle)) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ssize_t k;

                ck_assert_msg(poll(&p, 1, 10000) == 1, "no \"%s\" in \"%s\"", needle, buf);
                k = read(fd, buf + *n, size - 1 - *n);
                ck_assert_msg(k > 0, "EOF before \"%s\" in \"%s\"", needle, buf);
                *n += (size_t)k;
                buf[*n] = 0;
        }
}

/* sandbox_enter() with a tty (cella exec -t): the command's pty comes over the socket,
 * made in the jail's devpts with the window size asked; the command starts with no
 * signal ignored; a SIGINT to the helper is the command's, whose exit status is the
 * helper's. */
START_TEST(test_enter_tty_and_signals)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_close_ int master = -EBADF, pidfd = -EBADF;
        char *argv[] = {"/bin/sh", "-c",
                        "stty size; tty; grep SigIgn /proc/self/status; "
                        "trap 'echo got INT; exit 7' INT; echo ready; sleep 100 & wait",
                        NULL};
        char *envp[] = {"PATH=/usr/bin:/bin", NULL};
        char line[64], buf[4096] = "";
        SandboxError err = {};
        siginfo_t si = {};
        size_t n = 0;
        pid_t pid = 0;
        int sp[2];
        Run r;

        REQUIRE_ROOT();
        write_script("idle.sh", "echo up\nexec sleep 1000", 0755);
        run_init(&r, 5, "idle.sh", NULL);
        s = run_spawn(&r);
        read_line(&r, line, sizeof line);
        ck_assert_str_eq(line, "up");
        /* The daemon ignores SIGPIPE: the command must not inherit that. */
        ck_assert(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        ck_assert_msg(sandbox_enter(&(SandboxEnter){.pidfd = s->pidfd,
                                                    .pid = s->pid,
                                                    .seccomp = seccomp_prog,
                                                    .argv = argv,
                                                    .envp = envp,
                                                    .stdio = {-1, -1, -1},
                                                    .cwd = "/",
                                                    .tty_socket = sp[1],
                                                    .tty_rows = 30,
                                                    .tty_cols = 90},
                                    &pid, &pidfd, &err) == 0,
                      "sandbox_enter: %s at %s", err.detail, sandbox_step_to_string(err.step));
        (void)signal(SIGPIPE, SIG_DFL);
        close(sp[1]);
        {
                struct pollfd p = {.fd = sp[0], .events = POLLIN};

                ck_assert_int_eq(poll(&p, 1, 10000), 1);
        }
        master = fd_receive(sp[0]);
        close(sp[0]);
        ck_assert_int_ge(master, 0);
        read_until(master, buf, sizeof buf, &n, "ready");
        ck_assert_msg(strstr(buf, "30 90"), "window size: %s", buf);
        ck_assert_msg(strstr(buf, "/dev/pts/"), "no pty of the jail: %s", buf);
        ck_assert_msg(strstr(buf, "SigIgn:\t0000000000000000"), "signals ignored: %s", buf);
        ck_assert_int_eq(kill(pid, SIGINT), 0); /* cella exec's Ctrl-C, passed on */
        read_until(master, buf, sizeof buf, &n, "got INT");
        ck_assert_int_eq(waitid(P_PIDFD, pidfd, &si, WEXITED), 0);
        ck_assert_int_eq(si.si_code, CLD_EXITED);
        ck_assert_int_eq(si.si_status, 7);
        ck_assert_int_eq(sandbox_signal(s, SIGKILL), 0);
        (void)run_wait(s);
        run_done(&r);
}
END_TEST

/* SIGUSR1 to the helper (the client of cella exec went away) kills the command's
 * process group: what it started in the background ends too, so the output pipe,
 * which they all hold, reaches its end. */
START_TEST(test_enter_end_kills_the_group)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        char *argv[] = {"/bin/sh", "-c", "sleep 100 & sleep 100 & echo ready; wait", NULL};
        char *envp[] = {"PATH=/usr/bin:/bin", NULL};
        char line[64], buf[256] = "";
        int in[2], out[2];
        SandboxError err = {};
        siginfo_t si = {};
        size_t n = 0;
        pid_t pid = 0;
        Run r;

        REQUIRE_ROOT();
        write_script("idle.sh", "echo up\nexec sleep 1000", 0755);
        run_init(&r, 6, "idle.sh", NULL);
        s = run_spawn(&r);
        read_line(&r, line, sizeof line);
        ck_assert_str_eq(line, "up");
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        close(in[1]);
        ck_assert_msg(sandbox_enter(&(SandboxEnter){.pidfd = s->pidfd,
                                                    .pid = s->pid,
                                                    .seccomp = seccomp_prog,
                                                    .argv = argv,
                                                    .envp = envp,
                                                    .stdio = {in[0], out[1], out[1]},
                                                    .cwd = "/",
                                                    .tty_socket = -1},
                                    &pid, &pidfd, &err) == 0,
                      "sandbox_enter: %s at %s", err.detail, sandbox_step_to_string(err.step));
        close(in[0]);
        close(out[1]);
        read_until(out[0], buf, sizeof buf, &n, "ready");
        ck_assert_int_eq(kill(pid, SIGUSR1), 0);
        {
                char *rest = NULL;
                size_t k = 0;

                /* EOF: no process of the command's is left holding the pipe. */
                ck_assert_int_eq(read_full_fd(out[0], OUTPUT_MAX, &rest, &k), 0);
                free(rest);
        }
        close(out[0]);
        ck_assert_int_eq(waitid(P_PIDFD, pidfd, &si, WEXITED), 0);
        ck_assert_int_eq(si.si_code, CLD_EXITED);
        ck_assert_int_eq(si.si_status, 128 + SIGKILL);
        ck_assert_int_eq(sandbox_signal(s, SIGKILL), 0);
        (void)run_wait(s);
        run_done(&r);
}
END_TEST

START_TEST(test_init_small)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *link = NULL;
        char exe[PATH_MAX];
        pid_t kids[8];
        SandboxExit e;
        ssize_t k;
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 20, "/bin/sleep", "100", NULL);
        s = run_spawn(&r);
        ck_assert_int_eq(wait_init(s), 1);
        /* pid 1 is cella-init now, with the app still its child. */
        ck_assert_int_ge(asprintf(&link, "/proc/%d/exe", (int)s->pid), 0);
        k = readlink(link, exe, sizeof exe - 1);
        ck_assert_int_gt(k, 0);
        exe[k] = 0;
        ck_assert_str_eq(exe, CELLA_INIT_PATH);
        ck_assert_uint_eq(children_of(s->pid, kids, ELEMENTSOF(kids)), 1);
        /* What crossed the exec: no new privileges, the seccomp filter (mode 2),
         * no capability; the app has the filter too. */
        ck_assert_int_eq(proc_field(s->pid, "status", "NoNewPrivs"), 1);
        ck_assert_int_eq(proc_field(s->pid, "status", "Seccomp"), 2);
        ck_assert_int_eq(proc_field(s->pid, "status", "CapEff"), 0);
        ck_assert_int_eq(proc_field(kids[0], "status", "Seccomp"), 2);
        /* Small: a few private pages of its own (data, heap, stack: about 44 KiB),
         * not a copy of the caller's; its text is the file's, shared by every
         * sandbox's init. */
        ck_assert_int_lt(proc_field(s->pid, "smaps_rollup", "Pss_Anon"), 128);
        /* Its duties: signals forwarded (sleep dies of SIGTERM), the app's end
         * reported, zombies reaped. */
        ck_assert_int_eq(sandbox_signal(s, SIGTERM), 0);
        e = run_wait(s);
        ck_assert_int_eq(e.code, CLD_KILLED);
        ck_assert_int_eq(e.status, SIGTERM);
        run_done(&r);
}
END_TEST

/* The app, the same uid as its init, cannot open init's memory once init is
 * cella-init: the exec of a file it cannot read left init not dumpable (its /proc
 * files are root's, and hidepid hides it). */
START_TEST(test_init_small_not_dumpable)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL, *mem = NULL;
        struct stat st;
        SandboxExit e;
        int in[2];
        Run r;

        REQUIRE_ROOT();
        write_script(
                "peek.sh",
                "read x\n"
                "for m in '<' '<>'; do\n"
                "  if (eval \"exec 3${m}/proc/1/mem\") 2>/dev/null; then echo opened; else echo "
                "refused; fi\n"
                "done",
                0755);
        run_init(&r, 24, "peek.sh", NULL);
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        r.spec.stdio[0] = in[0];
        s = run_spawn(&r);
        safe_close(in[0]);
        ck_assert_int_eq(wait_init(s), 1);
        ck_assert_int_ge(asprintf(&mem, "/proc/%d/mem", (int)s->pid), 0);
        ck_assert_int_eq(stat(mem, &st), 0);
        ck_assert_msg(st.st_uid == 0, "init's /proc files belong to %u: it is dumpable",
                      (unsigned)st.st_uid);
        ck_assert_int_eq(write(in[1], "go\n", 3), 3);
        safe_close(in[1]);
        e = run_wait(s);
        ck_assert_int_eq(e.code, CLD_EXITED);
        out = read_output(&r);
        ck_assert_str_eq(out, "refused\nrefused\n");
        run_done(&r);
}
END_TEST

/* An orphan of the app is reaped by cella-init, and the app's status is the one
 * reported, not the orphan's. */
START_TEST(test_init_small_reaps_orphans)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL;
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        /* The app waits until init is cella-init (its parent's exe), leaves an
         * orphan that exits 9, waits for it to be reaped, and exits 4. */
        write_script("orphan.sh",
                     "read x\n"
                     "sh -c 'sh -c \"exit 9\" & echo $! > /tmp/orphan' \n"
                     "o=$(cat /tmp/orphan)\n"
                     "while [ -e /proc/$o ]; do :; done\n"
                     "echo reaped\n"
                     "exit 4",
                     0755);
        run_init(&r, 21, "orphan.sh", NULL);
        {
                int in[2];

                ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
                r.spec.stdio[0] = in[0];
                s = run_spawn(&r);
                safe_close(in[0]);
                ck_assert_int_eq(wait_init(s), 1);
                ck_assert_int_eq(write(in[1], "go\n", 3), 3);
                safe_close(in[1]);
        }
        e = run_wait(s);
        ck_assert_int_eq(e.code, CLD_EXITED);
        ck_assert_int_eq(e.status, 4);
        out = read_output(&r);
        ck_assert_str_eq(out, "reaped\n");
        run_done(&r);
}
END_TEST

/* Without init_path, pid 1 stays a fork of the caller and runs the same loop. */
START_TEST(test_init_builtin)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        char line[64];
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        write_script("trap2.sh", "trap 'echo got TERM; exit 6' TERM\necho ready\nsleep 100 &\nwait",
                     0755);
        run_init(&r, 22, "trap2.sh", NULL);
        r.spec.init_path = NULL;
        s = run_spawn(&r);
        read_line(&r, line, sizeof line);
        ck_assert_str_eq(line, "ready");
        ck_assert_int_eq(sandbox_signal(s, SIGTERM), 0);
        e = run_wait(s);
        ck_assert_int_eq(e.code, CLD_EXITED);
        ck_assert_int_eq(e.status, 6);
        ck_assert_int_eq(s->init_exec, 0);
        run_done(&r);
}
END_TEST

/* A cella-init that cannot run (missing, not executable by the app's uid, or
 * readable by it) is reported, and the built-in loop does its work: the app's status still arrives.
 */
START_TEST(test_init_exec_fails)
{
        static const struct {
                const char *name;
                mode_t mode;
                int error;
        } cases[] = {
                {"no-such-init", 0, ENOENT},
                {"root-only-init", 0700, EACCES},
                /* readable by the app's uid: it would be dumpable (spawn.c) */
                {"readable-init", 0755, EPERM},
        };

        REQUIRE_ROOT();
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(sandbox_freep) Sandbox *s = NULL;
                _cleanup_free_ char *path = NULL;
                SandboxExit e;
                Run r;
                int in[2];

                ck_assert_int_ge(asprintf(&path, "%s/%s", app_dir, cases[i].name), 0);
                if (cases[i].mode)
                        write_script(cases[i].name, "exit 0", cases[i].mode);
                /* The app runs until told: past the delay after which init execs. */
                run_init(&r, 23, "/bin/sh", "-c", "read x; exit 7", NULL);
                r.spec.init_path = path;
                ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
                r.spec.stdio[0] = in[0];
                s = run_spawn(&r);
                safe_close(in[0]);
                ck_assert_int_eq(wait_init(s), -cases[i].error);
                ck_assert_int_eq(write(in[1], "go\n", 3), 3);
                safe_close(in[1]);
                e = run_wait(s);
                ck_assert_int_eq(e.code, CLD_EXITED);
                ck_assert_int_eq(e.status, 7);
                run_done(&r);
        }
}
END_TEST

START_TEST(test_free_kills_running_app)
{
        Sandbox *s;
        pid_t init, kids[8];
        char st;
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 5, "/bin/sleep", "100", NULL);
        s = run_spawn(&r);
        init = s->pid;
        /* The app was exec'ed before sandbox_spawn returned: it is init's only child. */
        ck_assert_uint_eq(children_of(init, kids, ELEMENTSOF(kids)), 1);
        st = proc_state(kids[0]);
        ck_assert_msg(st == 'S' || st == 'R', "app state %c", st);
        ck_assert_int_eq(sandbox_process(s), 0);

        s = sandbox_free(s);
        ck_assert_ptr_null(s);
        /* Both gone: no process, no zombie (init is reaped, and a pid namespace's
         * init reaps everything in it before it exits). */
        st = proc_state(kids[0]);
        ck_assert_msg(st == 0, "app %d still there, state %c", (int)kids[0], st);
        ck_assert_int_eq(proc_state(init), 0);
        assert_no_children();
        ck_assert_ptr_null(sandbox_free(NULL));
        run_done(&r);
}
END_TEST

START_TEST(test_fail_bind_source)
{
        _cleanup_free_ char *missing = NULL;
        SandboxBind binds[2];
        Run r;

        REQUIRE_ROOT();
        ck_assert_int_ge(asprintf(&missing, "%s/does-not-exist", app_dir), 0);
        run_init(&r, 6, "/bin/true", NULL);
        binds[0] = r.bind;
        binds[1] = (SandboxBind){.source = missing, .target = "/missing"};
        r.spec.binds = binds;
        r.spec.n_binds = 2;
        expect_spawn_fail(&r, -ENOENT, SANDBOX_STEP_MOUNT, missing);

        /* The same bind marked optional is skipped. (The failed spawn closed the
         * output pipe's write end: a new pipe, not a stale fd number.) */
        binds[1].flags = SANDBOX_BIND_OPTIONAL;
        r.out[0] = safe_close(r.out[0]);
        ck_assert_int_eq(pipe2(r.out, O_CLOEXEC), 0);
        r.spec.stdio[1] = r.spec.stdio[2] = r.out[1];
        {
                _cleanup_(sandbox_freep) Sandbox *s = run_spawn(&r);
                SandboxExit e = run_wait(s);

                ck_assert_int_eq(e.code, CLD_EXITED);
                ck_assert_int_eq(e.status, 0);
        }
        run_done(&r);
}
END_TEST

/* SANDBOX_BIND_FD: a mount the caller made (an app's /data file system) is moved to
 * its target as it is, writable, noexec, nosuid, nodev, its own root. */
START_TEST(test_bind_fd)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL;
        _cleanup_close_ int fs = -EBADF, mnt = -EBADF;
        SandboxBind binds[2];
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        ck_assert_int_ge(fs, 0);
        ck_assert_int_eq(fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0777", 0), 0);
        ck_assert_int_eq(fsconfig(fs, FSCONFIG_SET_STRING, "size", "1m", 0), 0);
        ck_assert_int_eq(fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0), 0);
        mnt = fsmount(fs, FSMOUNT_CLOEXEC, 0);
        ck_assert_int_ge(mnt, 0);
        write_script(
                "bindfd.sh",
                "printf '#!/bin/sh\\necho ran\\n' > /data/x.sh && chmod +x /data/x.sh\n"
                "/data/x.sh 2>/dev/null || echo noexec\n"
                "awk '$5 == \"/data\" { for (i = 7; $i != \"-\"; i++); print $4, $6, $(i + 1) }' "
                "/proc/self/mountinfo\n",
                0755);
        run_init(&r, 15, "bindfd.sh", NULL);
        binds[0] = r.bind;
        binds[1] = (SandboxBind){.source = "a test tmpfs",
                                 .target = "/data",
                                 .flags = SANDBOX_BIND_RW | SANDBOX_BIND_NOEXEC | SANDBOX_BIND_FD,
                                 .fd = mnt};
        r.spec.binds = binds;
        r.spec.n_binds = 2;
        s = run_spawn(&r);
        out = read_output(&r);
        e = run_wait(s);
        ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d, output:\n%s", e.code,
                      e.status, out);
        ck_assert_str_eq(out, "noexec\n/ rw,nosuid,nodev,noexec,relatime tmpfs\n");
        /* What the app wrote is in the caller's file system. */
        ck_assert_int_eq(faccessat(mnt, "x.sh", F_OK, 0), 0);
        run_done(&r);
}
END_TEST

/*
 * A bound file replaced by rename(2) while sandboxes start (ldconfig rewriting
 * /etc/ld.so.cache, a package upgrade): the clone taken before the rename can no
 * longer be attached (ENOENT), and the jail takes a fresh one. Every start must
 * succeed and see a whole file, old or new, while a child renames a new copy
 * over the file as fast as it can.
 */
static int write_new_file(const char *path, const char *text)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        return fd < 0 ? -errno : loop_write(fd, text, strlen(text));
}

/*
 * A bound file replaced at a point the test drives: a replacer process renames a new
 * file ("v<k>\n", k counting every replacement) over app_dir/replaced.txt each time
 * it reads a byte on its socket, and answers when done. The sandbox's setup process
 * asks it from sandbox_test_before_file_attach, right before a try to attach
 * /replaced.txt, at most replace_limit times per start (the count lives in the
 * setup process, a fresh copy of this one for every start).
 */
static int replacer_sock = -EBADF;
static unsigned replace_limit, replace_count;

static void replace_before_attach(const char *target)
{
        char c = 'r';

        if (strcmp(target, "replaced.txt") != 0 || replace_count >= replace_limit)
                return;
        replace_count++;
        if (write(replacer_sock, &c, 1) != 1 || read(replacer_sock, &c, 1) != 1)
                _exit(120); /* the start fails; the test names it */
}

/* The replacer's side; exits when the test closes its end. */
static _Noreturn void replacer_serve(int sock, const char *file, const char *tmp)
{
        char c, text[32];

        for (unsigned k = 1; read(sock, &c, 1) == 1; k++) {
                snprintf(text, sizeof text, "v%u\n", k);
                if (write_new_file(tmp, text) < 0 || rename(tmp, file) < 0 ||
                    write(sock, &c, 1) != 1)
                        _exit(1);
        }
        _exit(0);
}

/* The host file's content now: what a start that bound it must have read. */
static char *host_file(const char *path)
{
        char *text = NULL;

        ck_assert_int_eq(read_file_at(AT_FDCWD, path, 4096, &text, NULL), 0);
        return text;
}

/* Starts `cat /replaced.txt` with app_dir/replaced.txt bound; returns what spawn
 * returned, and the app's output (caller frees) when it ran. */
static int start_cat_replaced(const char *file, char **out, SandboxError *err)
{
        SandboxBind binds[2];
        Sandbox *s = NULL;
        SandboxExit e;
        Run r;
        int k;

        run_init(&r, 16, "/bin/cat", "/replaced.txt", NULL);
        binds[0] = r.bind;
        binds[1] = (SandboxBind){.source = file, .target = "/replaced.txt"};
        r.spec.binds = binds;
        r.spec.n_binds = 2;
        *err = (SandboxError){};
        k = sandbox_spawn(&r.spec, &s, err);
        r.out[1] = safe_close(r.out[1]);
        *out = NULL;
        if (k == 0) {
                *out = read_output(&r);
                e = run_wait(s);
                ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d: %s", e.code,
                              e.status, *out);
                sandbox_free(s);
        }
        run_done(&r);
        return k;
}

/*
 * A file replaced while a start binds it (ldconfig's ld.so.cache, a package
 * upgrade) never fails the start: replaced once, or JAIL_ATTACH_TRIES - 1 times
 * during one start's attach, the start binds the file the path names at the end,
 * whole. Replaced before every try, the start fails with EBUSY naming the file
 * after exactly JAIL_ATTACH_TRIES replacements: a clear error, not a hang. The
 * replacements happen at the one point that matters, so the outcome does not
 * depend on how fast the machine is.
 */
START_TEST(test_bind_file_replaced_meanwhile)
{
        static const unsigned limits[] = {1, 1, 1, 2, 5, JAIL_ATTACH_TRIES - 1};
        _cleanup_free_ char *file = NULL, *tmp = NULL;
        int sv[2], status;
        pid_t replacer;

        REQUIRE_ROOT();
        ck_assert_int_ge(asprintf(&file, "%s/replaced.txt", app_dir), 0);
        ck_assert_int_ge(asprintf(&tmp, "%s/replaced.tmp", app_dir), 0);
        ck_assert_int_eq(write_new_file(file, "v0\n"), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        replacer = fork();
        ck_assert_int_ge(replacer, 0);
        if (replacer == 0) {
                close(sv[0]);
                replacer_serve(sv[1], file, tmp);
        }
        close(sv[1]);
        replacer_sock = sv[0];
        sandbox_test_before_file_attach = replace_before_attach;

        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                _cleanup_free_ char *before = host_file(file), *out = NULL, *now = NULL;
                SandboxError err;
                int k;

                replace_limit = limits[i];
                k = start_cat_replaced(file, &out, &err);
                ck_assert_msg(k == 0, "replaced %u times: %s at step %s: %s", limits[i],
                              strerror(-k), sandbox_step_to_string(err.step), err.detail);
                now = host_file(file);
                ck_assert_int_eq(atoi(now + 1) - atoi(before + 1), (int)limits[i]);
                ck_assert_str_eq(out, now);
        }

        /* A replacer faster than every try: a clear error after JAIL_ATTACH_TRIES. */
        {
                _cleanup_free_ char *before = host_file(file), *out = NULL, *now = NULL;
                SandboxError err;
                int k;

                replace_limit = UINT_MAX;
                k = start_cat_replaced(file, &out, &err);
                ck_assert_msg(k == -EBUSY, "gave %d (%s at %s: %s)", k, strerror(-k),
                              sandbox_step_to_string(err.step), err.detail);
                ck_assert_int_eq(err.step, SANDBOX_STEP_MOUNT);
                ck_assert_msg(strstr(err.detail, file) && strstr(err.detail, "replaced 32 times"),
                              "detail: %s", err.detail);
                now = host_file(file);
                ck_assert_int_eq(atoi(now + 1) - atoi(before + 1), JAIL_ATTACH_TRIES);
        }

        sandbox_test_before_file_attach = NULL;
        replacer_sock = safe_close(replacer_sock);
        ck_assert_int_eq(waitpid(replacer, &status, 0), replacer);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_no_children();
}
END_TEST

/*
 * The same against a real replacer that never stops (a new file every 100 us, no
 * hook): however the machine's load interleaves it with the starts, each start
 * either binds a whole file or fails with the EBUSY of the test above, never
 * another error, a torn file or a hang.
 */
START_TEST(test_bind_file_replaced_endlessly)
{
        _cleanup_free_ char *file = NULL, *tmp = NULL;
        unsigned ok = 0, busy = 0;
        pid_t renamer;
        int status;

        REQUIRE_ROOT();
        ck_assert_int_ge(asprintf(&file, "%s/replaced.txt", app_dir), 0);
        ck_assert_int_ge(asprintf(&tmp, "%s/replaced.tmp", app_dir), 0);
        ck_assert_int_eq(write_new_file(file, "whole\n"), 0);
        renamer = fork();
        ck_assert_int_ge(renamer, 0);
        if (renamer == 0) {
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion ends the test */
                for (;;) {
                        if (write_new_file(tmp, "whole\n") < 0 || rename(tmp, file) < 0)
                                _exit(1);
                        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000}, NULL);
                }
        }
        for (int i = 0; i < 100; i++) {
                _cleanup_free_ char *out = NULL;
                SandboxError err;
                int k = start_cat_replaced(file, &out, &err);

                if (k == -EBUSY && err.step == SANDBOX_STEP_MOUNT &&
                    strstr(err.detail, "replaced 32 times")) {
                        busy++;
                        continue;
                }
                ck_assert_msg(k == 0, "start %d: %s at step %s: %s", i, strerror(-k),
                              sandbox_step_to_string(err.step), err.detail);
                ck_assert_str_eq(out, "whole\n");
                ok++;
        }
        printf("%s: %u starts bound the file, %u met a file replaced on every try\n", TEST_NAME, ok,
               busy);
        ck_assert_int_eq(kill(renamer, SIGKILL), 0);
        ck_assert_int_eq(waitpid(renamer, &status, 0), renamer);
        ck_assert(WIFSIGNALED(status));
        assert_no_children();
}
END_TEST

START_TEST(test_fail_exec_missing)
{
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 7, "not-there.sh", NULL);
        expect_spawn_fail(&r, -ENOENT, SANDBOX_STEP_EXEC, "/app/not-there.sh");
        run_done(&r);
}
END_TEST

START_TEST(test_fail_exec_not_executable)
{
        Run r;

        REQUIRE_ROOT();
        write_script("noexec.sh", "echo should not run", 0644);
        run_init(&r, 8, "noexec.sh", NULL);
        expect_spawn_fail(&r, -EACCES, SANDBOX_STEP_EXEC, "/app/noexec.sh");
        {
                _cleanup_free_ char *out = NULL;

                out = read_output(&r);
                ck_assert_str_eq(out, "");
        }
        run_done(&r);
}
END_TEST

START_TEST(test_fail_exec_interpreter_missing)
{
        Run r;

        REQUIRE_ROOT();
        /* ENOENT from execve, but the entry is there: its #! interpreter is not. */
        {
                static const char text[] = "#!/usr/bin/no-such-interpreter\necho no\n";
                _cleanup_free_ char *path = NULL;
                _cleanup_close_ int fd = -EBADF;

                ck_assert_int_ge(asprintf(&path, "%s/badshebang.sh", app_dir), 0);
                fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(loop_write(fd, text, sizeof text - 1), 0);
                ck_assert_int_eq(fchmod(fd, 0755), 0);
        }
        run_init(&r, 8, "badshebang.sh", NULL);
        expect_spawn_fail(&r, -ENOENT, SANDBOX_STEP_EXEC,
                          "#! interpreter /usr/bin/no-such-interpreter does not exist");
        run_done(&r);

        /* A script read by the program (entry_scripts): missing is the entry's fault. */
        run_init(&r, 8, "/bin/true", NULL);
        r.spec.entry_scripts = (char *[]){"/app/no-such-script.lua", NULL};
        expect_spawn_fail(&r, -ENOENT, SANDBOX_STEP_EXEC, "/app/no-such-script.lua does not exist");
        run_done(&r);
}
END_TEST

/* spec.pty_socket: the app's stdio is a pty of the sandbox's devpts, of the size
 * asked, its controlling terminal; the master comes over the socket. */
START_TEST(test_pty)
{
        _cleanup_close_pair_ int sock[2] = {-EBADF, -EBADF};
        _cleanup_close_ int master = -EBADF;
        char cbuf[CMSG_SPACE(sizeof(int))], byte, out[512];
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = cbuf,
                            .msg_controllen = sizeof cbuf};
        struct cmsghdr *cm;
        size_t n = 0;
        Sandbox *s;
        Run r;

        REQUIRE_ROOT();
        write_script("pty.sh", "tty\nstty size\n[ -t 0 ] && echo stdin-tty", 0755);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock), 0);
        run_init(&r, 8, "pty.sh", NULL);
        r.spec.pty_socket = sock[1];
        r.spec.pty_rows = 40;
        r.spec.pty_cols = 120;
        s = run_spawn(&r);
        sock[1] = safe_close(sock[1]);
        ck_assert_int_eq(recvmsg(sock[0], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC), 1);
        cm = CMSG_FIRSTHDR(&mh);
        ck_assert_ptr_nonnull(cm);
        ck_assert_int_eq(cm->cmsg_type, SCM_RIGHTS);
        memcpy(&master, CMSG_DATA(cm), sizeof master);
        ck_assert(isatty(master));
        for (;;) { /* EIO once the app's side is closed */
                ssize_t k = read(master, out + n, sizeof out - 1 - n);

                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        out[n] = 0;
        ck_assert_int_eq(run_wait(s).status, 0);
        sandbox_free(s);
        ck_assert_msg(strstr(out, "/dev/pts/0\r\n40 120\r\nstdin-tty\r\n"), "output: %s", out);
        /* Nothing went to the pipes. */
        {
                _cleanup_free_ char *rest = read_output(&r);

                ck_assert_str_eq(rest, "");
        }
        run_done(&r);
}
END_TEST

START_TEST(test_fail_prepare)
{
        Run r;

        REQUIRE_ROOT();
        run_init(&r, 9, "/bin/true", NULL);
        r.spec.seccomp = NULL;
        expect_spawn_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "seccomp");
        run_done(&r);

        run_init(&r, 9, "/bin/true", NULL);
        r.spec.host_uid = 0;
        expect_spawn_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "root");
        run_done(&r);

        run_init(&r, 9, "/bin/true", NULL);
        r.spec.host_gid = 0;
        expect_spawn_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "root");
        run_done(&r);

        run_init(&r, 9, "/bin/true", NULL);
        r.spec.exec_path = "app/relative";
        expect_spawn_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, NULL);
        run_done(&r);

        run_init(&r, 9, "/bin/true", NULL);
        r.spec.hostname = "";
        expect_spawn_fail(&r, -EINVAL, SANDBOX_STEP_PREPARE, "hostname");
        run_done(&r);
}
END_TEST

/* A case of its own (see SKIP_TEST): the host may have no hard limit to exceed. */
START_TEST(test_fail_rlimit_over_hard)
{
        struct rlimit rl;
        Run r;

        REQUIRE_ROOT();
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_max == RLIM_INFINITY)
                SKIP_TEST("RLIMIT_NOFILE has no hard limit to exceed");
        run_init(&r, 9, "/bin/true", NULL);
        r.spec.rlimit_nofile = (uint64_t)rl.rlim_max + 1;
        expect_spawn_fail(&r, -EPERM, SANDBOX_STEP_PREPARE, "limit");
        run_done(&r);
}
END_TEST

/*
 * libcella-memory's readings (src/memory/reading.h) of a real sandbox's cgroups: an
 * app that holds 40 MiB of heap reads as at least that much anon memory in its leaf,
 * under the limit the spec set, and no OOM kill.
 */
START_TEST(test_memory_reading)
{
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        MemorySource *src = NULL;
        MemoryReading mr;
        Sandbox *s;
        char line[16];
        Run r;
        int k;

        REQUIRE_ROOT();
        k = cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m);
        if (k < 0)
                SKIP_TEST("no cgroup hierarchy: %s", strerror(-k));
        run_init(&r, 10, "/usr/bin/python3", "-c",
                 "import signal\nb = bytearray(b'x') * (40 << 20)\nprint('ok', flush=True)\n"
                 "signal.pause()",
                 NULL);
        r.spec.cgroups = m;
        r.spec.cgroup_label = "t-sandbox-memory";
        r.spec.limits.memory_max = 128 * MiB;
        s = run_spawn(&r);
        read_line(&r, line, sizeof line);
        ck_assert_str_eq(line, "ok");
        ck_assert_int_eq(memory_source_open_app(s->cgroup, &src), 0);
        ck_assert_int_eq(memory_source_read(src, &mr), 0);
        ck_assert_uint_ge(mr.anon, 40 * MiB);
        ck_assert_uint_ge(mr.current, mr.anon);
        ck_assert_uint_eq(mr.limit, 128 * MiB);
        ck_assert_uint_le(mr.available, 128 * MiB - 40 * MiB);
        ck_assert_uint_ge(mr.peak, mr.current);
        ck_assert_uint_eq(mr.oom_kills, 0);
        ck_assert_int_eq(sandbox_signal(s, SIGKILL), 0);
        (void)run_wait(s);
        memory_source_free(src);
        s = sandbox_free(s);
        run_done(&r);
}
END_TEST

START_TEST(test_oom_cgroup)
{
        static const char *const ctrls[] = {"", "memory", "pids", "cpu", "freezer"};
        _cleanup_(manager_freep) CgroupManager *m = NULL;
        char *paths[ELEMENTSOF(ctrls)] = {};
        Sandbox *s;
        SandboxExit e;
        size_t n_paths = 0;
        struct stat st;
        Run r;
        int k;

        REQUIRE_ROOT();
        k = cgroup_manager_new("/sys/fs/cgroup", CGROUP_MODE_AUTO, NULL, &m);
        if (k < 0)
                SKIP_TEST("no cgroup hierarchy: %s", strerror(-k));

        /* First a python that fits: the limit leaves room to start the interpreter, so
         * the kill below is the allocation's doing. */
        run_init(&r, 10, "/usr/bin/python3", "-c", "b = bytearray(b'x') * (1 << 20); print('ok')",
                 NULL);
        r.spec.cgroups = m;
        r.spec.cgroup_label = "t-sandbox-oom";
        r.spec.limits.memory_max = 16 * MiB;
        s = run_spawn(&r);
        ck_assert_ptr_nonnull(s->cgroup);
        e = run_wait(s);
        {
                _cleanup_free_ char *out = read_output(&r);

                ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d, output:\n%s",
                              e.code, e.status, out);
                ck_assert_str_eq(out, "ok\n");
        }
        ck_assert(!e.oom_killed);
        s = sandbox_free(s);
        run_done(&r);

        run_init(&r, 10, "/usr/bin/python3", "-c", "b = bytearray(b'x') * (256 << 20)", NULL);
        r.spec.cgroups = m;
        r.spec.cgroup_label = "t-sandbox-oom";
        r.spec.limits.memory_max = 16 * MiB;
        s = run_spawn(&r);
        ck_assert_ptr_nonnull(s->cgroup);
        for (size_t i = 0; i < ELEMENTSOF(ctrls); i++) {
                const char *p = cgroup_path(s->cgroup, ctrls[i]);

                if (!p)
                        continue;
                ck_assert_msg(stat(p, &st) == 0 && S_ISDIR(st.st_mode), "leaf %s: %m", p);
                paths[n_paths] = strdup(p);
                ck_assert_ptr_nonnull(paths[n_paths]);
                n_paths++;
        }
        ck_assert_uint_gt(n_paths, 0);
        e = run_wait(s);
        ck_assert_int_eq(e.code, CLD_KILLED);
        ck_assert_int_eq(e.status, SIGKILL);
        ck_assert(e.oom_killed);
        ck_assert_uint_ge(e.oom_kills, 1);

        s = sandbox_free(s);
        for (size_t i = 0; i < n_paths; i++) {
                errno = 0;
                ck_assert_msg(stat(paths[i], &st) < 0 && errno == ENOENT, "leaf %s left behind",
                              paths[i]);
                free(paths[i]);
        }
        assert_no_children();
        run_done(&r);
}
END_TEST

/* A SandboxSpec.starting that holds the spawn until the app's output ends. */
typedef struct HoldSpawn {
        Run *run;
        unsigned calls;
        char out[4096]; /* what the app wrote meanwhile */
        size_t n_out;
} HoldSpawn;

/*
 * Closes our copy of the output's write end and reads the output to its end: every
 * writer of the pipe, the app included, has exited by then, so whatever the app did
 * (its OOM kills included) happened before sandbox_spawn() returns, however fast
 * the caller is. Fails the test after 60 s without the end.
 */
static int starting_hold_until_output_ends(SandboxSpec *spec, void *userdata)
{
        HoldSpawn *h = userdata;
        struct timespec t0, t;

        (void)spec;
        h->calls++;
        h->run->out[1] = safe_close(h->run->out[1]);
        ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
        for (;;) {
                struct pollfd p = {.fd = h->run->out[0], .events = POLLIN};
                long left_ms;
                ssize_t k;

                ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &t), 0);
                left_ms = 60000 -
                          ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
                ck_assert_msg(left_ms > 0, "the app's output did not end in 60 s: %.*s",
                              (int)h->n_out, h->out);
                if (poll(&p, 1, (int)left_ms) < 0) {
                        ck_assert_int_eq(errno, EINTR);
                        continue;
                }
                if (!p.revents)
                        continue;
                k = read(h->run->out[0], h->out + h->n_out, sizeof h->out - 1 - h->n_out);
                if (k < 0 && errno == EINTR)
                        continue;
                ck_assert_msg(k >= 0, "read the app's output: %m");
                if (k == 0)
                        break;
                h->n_out += (size_t)k;
                ck_assert_uint_lt(h->n_out, sizeof h->out - 1);
        }
        h->out[h->n_out] = 0;
        return 0;
}

/* Fills r to run argv under the memory cgroup of m (16 MiB) with the spawn held until
 * the app's output ends (h). */
static void run_init_held(Run *r, HoldSpawn *h, CgroupManager *m, const char *script)
{
        run_init(r, 10, "/bin/sh", "-c", script, NULL);
        r->spec.cgroups = m;
        r->spec.cgroup_label = "t-sandbox-oom-held";
        r->spec.limits.memory_max = 16 * MiB;
        *h = (HoldSpawn){.run = r};
        r->spec.starting = starting_hold_until_output_ends;
        r->spec.prepare_userdata = h;
}

/*
 * The OOM kill count is the rise from before the app could run, however late the
 * caller looks: here the app is OOM-killed (and its output ends) before
 * sandbox_spawn() even returns, which a slow supervisor on a loaded machine sees at
 * random (a baseline read once the spawn had returned held the kill, and the exit
 * said "killed by signal 9", oom_killed false). Then, in the same leaf still holding
 * that kill, a child of the app is OOM-killed: the exit counts this run's kills
 * only, never the first run's.
 * Each cgroup backend the host offers (v1 drives a hybrid host's v1 hierarchies).
 */
START_TEST(test_oom_kill_before_spawn_returns)
{
        static const CgroupMode modes[] = {CGROUP_MODE_AUTO, CGROUP_MODE_V1, CGROUP_MODE_V2};
        static const char hog[] = "/usr/bin/python3 -c 'b = bytearray(b\"x\") * (256 << 20)'";
        unsigned tried = 0;

        REQUIRE_ROOT();
        for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
                _cleanup_(manager_freep) CgroupManager *m = NULL;
                _cleanup_free_ char *app_kill = NULL, *child_kill = NULL;
                Sandbox *first, *second;
                HoldSpawn h1, h2;
                uint64_t before, after;
                SandboxExit e;
                Run r1, r2;
                int k;

                k = cgroup_manager_new("/sys/fs/cgroup", modes[i], NULL, &m);
                if (k < 0) {
                        printf("%s: cgroup mode %d not offered here: %s\n", TEST_NAME,
                               (int)modes[i], strerror(-k));
                        continue;
                }
                tried++;
                ck_assert_int_ge(asprintf(&app_kill, "exec %s", hog), 0);
                ck_assert_int_ge(asprintf(&child_kill, "%s; echo status $?", hog), 0);

                run_init_held(&r1, &h1, m, app_kill);
                first = run_spawn(&r1);
                ck_assert_uint_eq(h1.calls, 1);
                e = run_wait(first);
                ck_assert_msg(e.code == CLD_KILLED && e.status == SIGKILL,
                              "mode %d: exit %d/%d, output:\n%s", (int)modes[i], e.code, e.status,
                              h1.out);
                /* At least the app's kill: under load the OOM killer may take the
                 * sandbox's init too before the app's memory is uncharged. */
                ck_assert_int_eq(cgroup_oom_kills(first->cgroup, &before), 0);
                ck_assert_msg(e.oom_killed && e.oom_kills >= 1 && e.oom_kills <= before,
                              "mode %d: oom_killed %d, oom_kills %llu, the leaf's count %llu",
                              (int)modes[i], e.oom_killed, (unsigned long long)e.oom_kills,
                              (unsigned long long)before);

                /* Same label, first not freed yet: the same leaf, its kill counted. */
                run_init_held(&r2, &h2, m, child_kill);
                second = run_spawn(&r2);
                ck_assert_uint_eq(h2.calls, 1);
                ck_assert_str_eq(cgroup_path(second->cgroup, "memory"),
                                 cgroup_path(first->cgroup, "memory"));
                e = run_wait(second);
                ck_assert_int_eq(cgroup_oom_kills(second->cgroup, &after), 0);
                /* The child's kill, and only the kills of this run: the leaf's count
                 * less what it held when the first run ended. Once in a while the
                 * kernel's OOM killer takes a second task after the child (its memory
                 * not yet uncharged): then the app was OOM-killed too, and that is a
                 * kill of this run as well. */
                ck_assert_msg(strstr(h2.out, "status 137\n"), "mode %d: output:\n%s", (int)modes[i],
                              h2.out);
                ck_assert_msg(e.oom_kills >= 1 && e.oom_kills == after - before,
                              "mode %d: oom_kills %llu, the leaf's count went %llu -> %llu",
                              (int)modes[i], (unsigned long long)e.oom_kills,
                              (unsigned long long)before, (unsigned long long)after);
                if (e.code == CLD_EXITED)
                        ck_assert_msg(e.status == 0 && !e.oom_killed && e.oom_kills == 1,
                                      "mode %d: exit status %d, oom_killed %d, oom_kills %llu",
                                      (int)modes[i], e.status, e.oom_killed,
                                      (unsigned long long)e.oom_kills);
                else
                        ck_assert_msg(e.code == CLD_KILLED && e.status == SIGKILL && e.oom_killed &&
                                              e.oom_kills >= 2,
                                      "mode %d: exit %d/%d, oom_killed %d, oom_kills %llu",
                                      (int)modes[i], e.code, e.status, e.oom_killed,
                                      (unsigned long long)e.oom_kills);
                second = sandbox_free(second);
                first = sandbox_free(first);
                assert_no_children();
                run_done(&r2);
                run_done(&r1);
        }
        if (tried == 0)
                SKIP_TEST("no cgroup hierarchy");
}
END_TEST

START_TEST(test_fds)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL;
        int extra[4], p[2];
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        /* Inheritable fds of the caller, which must not reach the app. */
        for (size_t i = 0; i < 2; i++) {
                extra[i] = open("/dev/null", O_RDONLY);
                ck_assert_int_ge(extra[i], 0);
        }
        ck_assert_int_eq(pipe(p), 0);
        extra[2] = p[0];
        extra[3] = p[1];

        run_init(&r, 11, "/bin/ls", "/proc/self/fd", NULL);
        r.spec.channel_fd = -1;
        s = run_spawn(&r);
        out = read_output(&r);
        e = run_wait(s);
        ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d", e.code, e.status);
        /* 0-2, and 3: the directory ls itself has open while listing. */
        ck_assert_str_eq(out, "0\n1\n2\n3\n");
        for (size_t i = 0; i < ELEMENTSOF(extra); i++)
                close(extra[i]);
        run_done(&r);
}
END_TEST

START_TEST(test_rlimits)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL;
        struct rlimit rl;
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        /* head's first write of 8192 bytes is cut short at the limit (4096 written);
         * its second write, at the limit, raises SIGXFSZ (25), which kills it: dash
         * says so on stderr and gives 128 + 25. The file keeps the first 4096 bytes. */
        write_script("limits.sh",
                     "ulimit -n; ulimit -Hn\n"
                     "head -c 8192 /dev/zero > /tmp/x\n"
                     "echo status $?\n"
                     "wc -c < /tmp/x",
                     0755);
        run_init(&r, 12, "limits.sh", NULL);
        r.spec.rlimit_nofile = 64;
        r.spec.rlimit_fsize = 4096;
        s = run_spawn(&r);
        out = read_output(&r);
        e = run_wait(s);
        ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d, output:\n%s", e.code,
                      e.status, out);
        ck_assert_str_eq(out, "64\n64\nFile size limit exceeded\nstatus 153\n4096\n");
        s = sandbox_free(s);
        free(TAKE_PTR(out));
        run_done(&r);

        /*
         * The per-user bounds every app gets whatever cella inherited (rlimit.c):
         * RLIMIT_MEMLOCK 8 MiB, RLIMIT_MSGQUEUE 819200, RLIMIT_SIGPENDING 4096,
         * RLIMIT_RTPRIO 0, RLIMIT_NICE 0, soft = hard. Raised here first, so the test
         * shows they are set, not inherited.
         */
        {
                /* Above each bound, where CAP_SYS_RESOURCE allows. */
                static const struct {
                        int resource;
                        rlim_t above;
                } raised[] = {
                        {RLIMIT_MEMLOCK, 64 << 20},
                        {RLIMIT_MSGQUEUE, 8 << 20},
                        {RLIMIT_SIGPENDING, 1 << 16},
                        {RLIMIT_RTPRIO, 99},
                        {RLIMIT_NICE, 40},
                };
                struct rlimit saved[ELEMENTSOF(raised)];

                for (size_t i = 0; i < ELEMENTSOF(raised); i++) {
                        struct rlimit up;

                        ck_assert_int_eq(getrlimit(raised[i].resource, &saved[i]), 0);
                        if (saved[i].rlim_max == RLIM_INFINITY ||
                            saved[i].rlim_max >= raised[i].above)
                                continue; /* above the bound already */
                        up = (struct rlimit){raised[i].above, raised[i].above};
                        /* Without CAP_SYS_RESOURCE (a container) a hard limit
                         * stays where it is: the bounds must hold all the same. */
                        ck_assert_msg(setrlimit(raised[i].resource, &up) == 0 || errno == EPERM,
                                      "raising rlimit %d: %m", raised[i].resource);
                }
                write_script("bounds.sh",
                             "grep -E '^Max (locked memory|msgqueue size|pending signals|"
                             "realtime priority|nice priority) ' /proc/self/limits | "
                             "sed -E 's/  +/:/g' | cut -d: -f1-3",
                             0755);
                run_init(&r, 12, "bounds.sh", NULL);
                s = run_spawn(&r);
                out = read_output(&r);
                e = run_wait(s);
                for (size_t i = 0; i < ELEMENTSOF(raised); i++)
                        ck_assert_int_eq(setrlimit(raised[i].resource, &saved[i]), 0);
                ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d, output:\n%s",
                              e.code, e.status, out);
                ck_assert_str_eq(out, "Max locked memory:8388608:8388608\n"
                                      "Max pending signals:4096:4096\n"
                                      "Max msgqueue size:819200:819200\n"
                                      "Max nice priority:0:0\n"
                                      "Max realtime priority:0:0\n");
                s = sandbox_free(s);
                free(TAKE_PTR(out));
                run_done(&r);
        }

        /* At the bound: the caller's own hard limit is allowed. */
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1u << 20)
                return;
        run_init(&r, 12, "/bin/sh", "-c", "ulimit -n", NULL);
        r.spec.rlimit_nofile = rl.rlim_max;
        s = run_spawn(&r);
        out = read_output(&r);
        e = run_wait(s);
        ck_assert_int_eq(e.code, CLD_EXITED);
        ck_assert_int_eq(e.status, 0);
        ck_assert_uint_eq(strtoull(out, NULL, 10), rl.rlim_max);
        run_done(&r);
}
END_TEST

/*
 * The app for the seccomp tests: makes each call named in argv[1] ("nr[,arg...]"
 * separated by spaces) and prints "nr:ok" or "nr:ERRNO_NAME" for each, on one line.
 */
static const char calls_py[] =
        "import ctypes, errno, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "out = []\n"
        "for spec in sys.argv[1].split():\n"
        "    nr, *args = [int(x, 0) for x in spec.split(',')]\n"
        "    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])\n"
        "    out.append('%d:%s' % (nr, 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()]))\n"
        "print(' '.join(out))\n";

/* ptrace(PTRACE_TRACEME), keyctl, add_key, mount: denied by default; clone3 (ENOSYS) and
 * socket(AF_PACKET) (EAFNOSUPPORT): explicit rules; getpid: allowed. */
#define SECCOMP_APP_CALLS "101 250 248 165 435 41,17,3 39"
#define SECCOMP_APP_OUT   "101:EPERM 250:EPERM 248:EPERM 165:EPERM 435:ENOSYS 41:EAFNOSUPPORT 39:ok\n"

static void write_calls_py(void)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;

        ck_assert_int_ge(asprintf(&path, "%s/calls.py", app_dir), 0);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, calls_py, strlen(calls_py)), 0);
}

/*
 * Reads the app's output to EOF while answering its denied calls into *counts (the
 * app blocks in a denied call until answered, so reading alone could hang). Returns
 * the output; the caller frees it.
 */
static char *serve_output(Sandbox *s, Run *r, SeccompDenials *counts)
{
        char *buf = calloc(1, OUTPUT_MAX + 1);
        size_t n = 0;

        ck_assert_ptr_nonnull(buf);
        for (;;) {
                struct pollfd p[2] = {{.fd = r->out[0], .events = POLLIN},
                                      {.fd = s->seccomp_notify_fd, .events = POLLIN}};
                ssize_t k;

                ck_assert_int_ge(poll(p, 2, 30000), 1);
                if (p[1].revents & POLLIN)
                        ck_assert_int_ge(seccomp_notify_process(s->seccomp_notify_fd, counts), 0);
                if (!(p[0].revents & (POLLIN | POLLHUP)))
                        continue;
                k = read(r->out[0], buf + n, OUTPUT_MAX - n);
                ck_assert_int_ge(k, 0);
                if (k == 0)
                        return buf;
                n += (size_t)k;
        }
}

START_TEST(test_seccomp_notify)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL;
        SeccompProgram *notify = NULL;
        SeccompDenials counts = {};
        SeccompDenialCount top[8];
        SandboxExit e;
        int fd;
        Run r;

        REQUIRE_ROOT();
        write_calls_py();
        ck_assert_int_eq(seccomp_program_builtin(&(SeccompOptions){.notify = true}, &notify), 0);
        run_init(&r, 13, "/usr/bin/python3", "/app/calls.py", SECCOMP_APP_CALLS, NULL);
        r.spec.seccomp = notify;
        s = run_spawn(&r);
        ck_assert_int_ge(s->seccomp_notify_fd, 0);
        ck_assert_int_ne(s->seccomp_notify_fd, s->ctl_fd);
        out = serve_output(s, &r, &counts);
        e = run_wait(s);
        ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d, output:\n%s", e.code,
                      e.status, out);
        /* The app saw EPERM for the denied calls, the explicit errnos for the others. */
        ck_assert_str_eq(out, SECCOMP_APP_OUT);
        /* Exactly the four denied calls were counted, by name. */
        ck_assert_int_ge(seccomp_notify_process(s->seccomp_notify_fd, &counts), 0);
        ck_assert_uint_eq(counts.total, 4);
        ck_assert_uint_eq(counts.other, 0);
        ck_assert_uint_eq(seccomp_denials_top(&counts, top, ELEMENTSOF(top)), 4);
        ck_assert_str_eq(seccomp_syscall_name(top[0].nr), "ptrace");
        ck_assert_str_eq(seccomp_syscall_name(top[1].nr), "mount");
        ck_assert_str_eq(seccomp_syscall_name(top[2].nr), "add_key");
        ck_assert_str_eq(seccomp_syscall_name(top[3].nr), "keyctl");
        for (size_t i = 0; i < 4; i++)
                ck_assert_uint_eq(top[i].count, 1);

        /* The Sandbox owns the listener: sandbox_free closes it. */
        fd = s->seccomp_notify_fd;
        s = sandbox_free(s);
        ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
        ck_assert_int_eq(errno, EBADF);
        assert_no_children();
        seccomp_program_free(notify);
        run_done(&r);
}
END_TEST

/* Without the option nothing changes: the same calls fail the same way, and no fd. */
START_TEST(test_seccomp_no_notify)
{
        _cleanup_(sandbox_freep) Sandbox *s = NULL;
        _cleanup_free_ char *out = NULL;
        SandboxExit e;
        Run r;

        REQUIRE_ROOT();
        write_calls_py();
        run_init(&r, 14, "/usr/bin/python3", "/app/calls.py", SECCOMP_APP_CALLS, NULL);
        s = run_spawn(&r);
        ck_assert_int_eq(s->seccomp_notify_fd, -1);
        out = read_output(&r);
        e = run_wait(s);
        ck_assert_msg(e.code == CLD_EXITED && e.status == 0, "exit %d/%d, output:\n%s", e.code,
                      e.status, out);
        ck_assert_str_eq(out, SECCOMP_APP_OUT);
        run_done(&r);
}
END_TEST

int main(void)
{
        Suite *suite = suite_create("sandbox");
        TCase *tc = tcase_create("spawn");
        SRunner *sr;

        if (skip_init() < 0)
                return EXIT_FAILURE;
        tcase_add_unchecked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_exit_status);
        tcase_add_test(tc, test_identity);
        tcase_add_test(tc, test_identity_block);
        tcase_add_test(tc, test_format_map);
        tcase_add_test(tc, test_prepare_callback);
        tcase_add_test(tc, test_wait_starting);
        tcase_add_test(tc, test_killed_by_signal);
        tcase_add_test(tc, test_signal_forwarded);
        tcase_add_test(tc, test_enter_tty_and_signals);
        tcase_add_test(tc, test_enter_end_kills_the_group);
        tcase_add_test(tc, test_free_kills_running_app);
        tcase_add_test(tc, test_init_small);
        tcase_add_test(tc, test_init_small_reaps_orphans);
        tcase_add_test(tc, test_init_small_not_dumpable);
        tcase_add_test(tc, test_init_builtin);
        tcase_add_test(tc, test_init_exec_fails);
        tcase_add_test(tc, test_fail_bind_source);
        tcase_add_test(tc, test_bind_fd);
        tcase_add_test(tc, test_bind_file_replaced_meanwhile);
        tcase_add_test(tc, test_bind_file_replaced_endlessly);
        tcase_add_test(tc, test_fail_exec_missing);
        tcase_add_test(tc, test_fail_exec_not_executable);
        tcase_add_test(tc, test_fail_exec_interpreter_missing);
        tcase_add_test(tc, test_pty);
        tcase_add_test(tc, test_fail_prepare);
        tcase_add_test(tc, test_fds);
        tcase_add_test(tc, test_rlimits);
        tcase_add_test(tc, test_seccomp_notify);
        tcase_add_test(tc, test_seccomp_no_notify);
        suite_add_tcase(suite, tc);

        /* A case of its own for each test that may skip on a root host (see SKIP_TEST). */
        {
                const struct {
                        const char *name;
                        const TTest *test;
                } alone[] = {
                        {"rlimit-hard", test_fail_rlimit_over_hard},
                        {"oom", test_oom_cgroup},
                        {"oom-spawn", test_oom_kill_before_spawn_returns},
                        {"memory", test_memory_reading},
                };

                for (size_t i = 0; i < ELEMENTSOF(alone); i++) {
                        TCase *c = tcase_create(alone[i].name);

                        tcase_set_tags(c, "alone");
                        tcase_add_unchecked_fixture(c, setup, teardown);
                        tcase_set_timeout(c, 60);
                        tcase_add_test(c, alone[i].test);
                        suite_add_tcase(suite, c);
                }
        }

        sr = srunner_create(suite);
        return skip_run(sr);
}
