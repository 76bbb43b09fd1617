/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella-oci: an OCI runtime with runc's command line (docs/oci.md, "Commands"). Every
 * command is one short-lived process: create builds the container's sandbox through
 * src/sandbox/ and exits, leaving the sandbox's init as a child that the caller's
 * subreaper (conmon, containerd's shim) inherits; the other commands find the
 * container by its state directory under --root.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/strv.h"
#include "oci/cgroups.h"
#include "oci/config.h"
#include "oci/hooks.h"
#include "oci/log.h"
#include "oci/spec.h"
#include "oci/state.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(OciConfig *, oci_config_free)

/* The runtime-spec versions cella-oci reads (config.h) and says it follows. */
#define OCI_VERSION_MIN "1.0.0"
#define OCI_VERSION_MAX "1.2.0"

#define ERRLEN 1024

typedef struct Global {
        const char *root;
        const char *log;
        bool log_json;
        bool debug;
        bool systemd_cgroup;
        int rootless; /* -1 auto, 0 false, 1 true: accepted, no effect (docs/oci.md) */
} Global;

static Global g = {.root = OCI_STATE_ROOT_DEFAULT, .rootless = -1};

/* ---- small helpers -------------------------------------------------------------- */

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        oci_log(OCI_LOG_ERROR, "%s", msg ? msg : fmt);
        return 1;
}

/*
 * The sandbox library's error e (r: its return) as one line into buf (size bytes).
 * The app's program that could not be executed (SANDBOX_STEP_EXEC: a diagnosis,
 * SandboxError.exec_cause, or enter.c's "execute PATH") is said in runc's words,
 * `exec: "ARGV0": no such file or directory`, then the library's fact when it says
 * more (a missing #! interpreter, a noexec mount): engines read these words (podman
 * maps "no such file or directory" and "executable file not found" to exit code 127,
 * "permission denied" to 126; libpod's getOCIRuntimeError()). Anything else:
 * "STEP: STRERROR: DETAIL".
 */
static void sandbox_error_text(const SandboxError *e, int r, const char *argv0, char *buf,
                               size_t size)
{
        int error = e->error ? e->error : -r;

        if (e->step == SANDBOX_STEP_EXEC && argv0 &&
            (e->exec_cause != SANDBOX_EXEC_CAUSE_NONE || strncmp(e->detail, "execute ", 8) == 0)) {
                char what[128];

                /* Go's syscall errors, which runc prints, are strerror in lower case. */
                snprintf(what, sizeof what, "%s", strerror(error));
                if (what[0] >= 'A' && what[0] <= 'Z')
                        what[0] = (char)(what[0] - 'A' + 'a');
                if (e->exec_cause == SANDBOX_EXEC_CAUSE_NONE ||
                    e->exec_cause == SANDBOX_EXEC_MISSING)
                        snprintf(buf, size, "exec: \"%s\": %s", argv0, what);
                else
                        snprintf(buf, size, "exec: \"%s\": %s: %s", argv0, what, e->detail);
                return;
        }
        snprintf(buf, size, "%s: %s%s%s", sandbox_step_to_string(e->step), strerror(error),
                 e->detail[0] ? ": " : "", e->detail);
}

/* A parser's or mapping's error about the config at path: its messages name the JSON
 * path after "config.json: ", said once, with the file's full path. */
static int config_fail(const char *path, const char *err)
{
        const char *p = strncmp(err, "config.json: ", 13) == 0 ? err + 13 : err;

        return fail("%s: %s", path, p);
}

static int no_such_container(const char *id)
{
        return fail("container \"%s\" does not exist", id);
}

/* A container id from the command line: refused with the reason unless oci_id_valid(). */
static int check_id(const char *id)
{
        if (!id || !*id)
                return fail("a container id is required");
        if (!oci_id_valid(id))
                return fail("invalid container id \"%.*s\": it must be 1 to %d of "
                            "[A-Za-z0-9_.-], starting with a letter or digit",
                            OCI_ID_MAX + 8, id, OCI_ID_MAX);
        return 0;
}

/* A loaded container: its state dir (locked), state, and what its cgroup is. */
typedef struct Container {
        int rootfd, dirfd, lockfd;
        OciState st;
        CgroupManager *cgm;
        Cgroup *cg;
        OciStatus status;
        int pidfd; /* of init while it lives, else -1 */
} Container;

static void container_done(Container *c)
{
        cgroup_close(c->cg);
        cgroup_manager_free(c->cgm);
        oci_state_done(&c->st);
        safe_close(c->pidfd);
        safe_close(c->lockfd);
        safe_close(c->dirfd);
        safe_close(c->rootfd);
        *c = (Container){.rootfd = -1, .dirfd = -1, .lockfd = -1, .pidfd = -1};
}

/* Opens and locks container id, reads its state, opens its cgroup (when it has one
 * and it is still there) and computes its status. Returns 0, or 1 with the error
 * logged ("does not exist"). */
static int container_load(const char *id, Container *c)
{
        int r;

        *c = (Container){.rootfd = -1, .dirfd = -1, .lockfd = -1, .pidfd = -1};
        if (check_id(id))
                return 1;
        c->rootfd = oci_root_open(g.root, false);
        if (c->rootfd == -ENOENT)
                return no_such_container(id);
        if (c->rootfd < 0)
                return fail("open the state root %s: %s", g.root, strerror(-c->rootfd));
        r = oci_container_open(c->rootfd, id, false, &c->dirfd, &c->lockfd);
        if (r == -ENOENT)
                return no_such_container(id);
        if (r < 0)
                return fail("open the state of container \"%s\": %s", id, strerror(-r));
        r = oci_state_read(c->dirfd, &c->st);
        if (r == -ENOENT)
                return no_such_container(id);
        if (r < 0)
                return fail("read the state of container \"%s\" (%s/%s/state.json): %s", id, g.root,
                            id, strerror(-r));
        if (c->st.cgroup_path) {
                r = oci_cgroup_open(c->st.cgroup_path, &c->cgm, &c->cg);
                if (r < 0 && r != -ENOENT)
                        oci_log(OCI_LOG_WARNING, "container \"%s\": its cgroup %s: %s", id,
                                c->st.cgroup_path, strerror(-r));
        }
        c->status = oci_state_status(c->dirfd, &c->st, c->cg ? cgroup_path(c->cg, "") : NULL,
                                     c->cg ? cgroup_path(c->cg, "freezer") : NULL, &c->pidfd);
        return 0;
}

/* The stored config.json of a container (as create read it). NULL with the error logged. */
static OciConfig *container_config(const Container *c)
{
        _cleanup_free_ char *text = NULL;
        char err[ERRLEN] = "";
        OciConfig *cfg = NULL;
        size_t n;
        int r;

        r = read_file_at(c->dirfd, "config.json", OCI_CONFIG_MAX_BYTES, &text, &n);
        if (r < 0) {
                fail("read the stored config of container \"%s\": %s", c->st.id, strerror(-r));
                return NULL;
        }
        r = oci_config_parse(text, n, &cfg, err, sizeof err);
        if (r < 0) {
                fail("the stored config of container \"%s\": %s", c->st.id, err);
                return NULL;
        }
        return cfg;
}

static char *state_json(const OciState *st, OciStatus status)
{
        return oci_state_to_json(st, status, false);
}

/* runc's signal names: "KILL", "SIGKILL", "9", "RTMIN+3". Returns the number or -1. */
static int signal_parse(const char *s)
{
        char *end;
        long n;

        if (!s || !*s)
                return -1;
        if (s[0] >= '0' && s[0] <= '9') {
                errno = 0;
                n = strtol(s, &end, 10);
                return errno || *end || n <= 0 || n > SIGRTMAX ? -1 : (int)n;
        }
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        for (int i = 1; i < NSIG; i++) {
                const char *name = sigabbrev_np(i);

                if (name && strcasecmp(name, s) == 0)
                        return i;
        }
        if (strncasecmp(s, "RTMIN+", 6) == 0 || strncasecmp(s, "RTMAX-", 6) == 0) {
                errno = 0;
                n = strtol(s + 6, &end, 10);
                if (errno || *end || n < 0 || n > SIGRTMAX - SIGRTMIN)
                        return -1;
                return s[5] == '+' ? SIGRTMIN + (int)n : SIGRTMAX - (int)n;
        }
        if (strcasecmp(s, "RTMIN") == 0)
                return SIGRTMIN;
        if (strcasecmp(s, "RTMAX") == 0)
                return SIGRTMAX;
        return -1;
}

/* The pids in the container's cgroup (its cgroup2 leaf, else a v1 one) into *ret
 * (malloc'd, *ret_n of them). Returns 0 or -errno. */
static int container_pids(const Container *c, pid_t **ret, size_t *ret_n)
{
        const char *dir;
        size_t max = 65536;
        pid_t *pids;
        int n;

        *ret = NULL;
        *ret_n = 0;
        if (!c->cg)
                return -ENOENT;
        dir = cgroup_path(c->cg, "");
        if (!dir)
                dir = cgroup_path(c->cg, "pids") ?: cgroup_path(c->cg, "memory");
        pids = calloc(max, sizeof *pids);
        if (!pids)
                return -ENOMEM;
        n = cgroup_read_procs(dir, pids, max);
        if (n < 0) {
                free(pids);
                return n;
        }
        *ret = pids;
        *ret_n = (size_t)n;
        return 0;
}

/* ---- create ------------------------------------------------------------------ */

/* cella-init: the build tree's when cella-oci runs from it, else the installed one. */
static const char *init_path(void)
{
        if (access(CELLA_INIT_BUILD_PATH, X_OK) == 0)
                return CELLA_INIT_BUILD_PATH;
        return CELLA_INIT_INSTALL_PATH;
}

/* Connects to the engine's console socket (runc's protocol: the pty master goes there
 * with SCM_RIGHTS). Returns the fd or -errno. A path longer than sun_path is reached
 * through /proc/self/fd of an O_PATH fd, as podman does. */
static int console_connect(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -EBADF, pfd = -EBADF;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (strlen(path) >= sizeof sa.sun_path) {
                pfd = open(path, O_PATH | O_CLOEXEC);
                if (pfd < 0)
                        return negative_errno();
                snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d", pfd);
        } else
                memcpy(sa.sun_path, path, strlen(path));
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

static char *now_rfc3339(void)
{
        struct timespec ts;
        struct tm tm;
        char buf[64], *r;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        if (asprintf(&r, "%s.%09ldZ", buf, ts.tv_nsec) < 0)
                return NULL;
        return r;
}

typedef struct CreateArgs {
        const char *id;
        const char *bundle;
        const char *pid_file;
        const char *console_socket;
        unsigned preserve_fds;
} CreateArgs;

/* Everything create made, undone on failure. */
typedef struct Creation {
        int rootfd, dirfd, lockfd;
        bool dir_made;
        uid_t host_id;
        CgroupManager *cgm;
        OciSystemdScope *scope;
        Sandbox *sb;
} Creation;

static void creation_undo(Creation *k, const char *id)
{
        if (k->sb) {
                /* sandbox_free() kills what it made and removes its cgroup. */
                k->sb = sandbox_free(k->sb);
        }
        if (k->scope)
                oci_systemd_scope_stop(k->scope);
        if (k->host_id)
                (void)oci_host_id_release(k->rootfd, id, k->host_id);
        if (k->dir_made)
                (void)oci_container_remove(k->rootfd, id);
}

/* Makes dirfd/name (mode 0600, not there before) holding data[0..n). 0 or -errno. */
static int file_create_at(int dirfd, const char *name, const char *data, size_t n)
{
        _cleanup_close_ int fd =
                openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

        if (fd < 0)
                return negative_errno();
        return loop_write(fd, data, n);
}

static int fd_is_open(int fd)
{
        return fcntl(fd, F_GETFD) >= 0;
}

/* The monitor's loop: answers and counts every denied call, logs each syscall's first
 * denial, and at the end (POLLHUP: every process of the container gone) the counts. */
_noreturn_ static void denial_monitor(int fd, const char *id)
{
        static SeccompDenials d;
        uint8_t said[SECCOMP_SYSCALL_NR_END] = {};
        SeccompDenialCount top[8];
        char line[512];
        size_t n, len = 0;

        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int r = poll(&p, 1, -1);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        break;
                if (p.revents & POLLIN) {
                        if (seccomp_notify_process(fd, &d) < 0)
                                break;
                        for (int nr = 0; nr < SECCOMP_SYSCALL_NR_END; nr++)
                                if (d.by_nr[nr] && !said[nr]) {
                                        said[nr] = 1;
                                        oci_log(OCI_LOG_WARNING,
                                                "container \"%s\": seccomp denied %s (EPERM, "
                                                "policy cella); later denials of it counted",
                                                id, seccomp_syscall_name(nr) ?: "?");
                                }
                        continue;
                }
                if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
                        break;
        }
        n = seccomp_denials_top(&d, top, ELEMENTSOF(top));
        for (size_t i = 0; i < n && len < sizeof line; i++)
                len += (size_t)snprintf(line + len, sizeof line - len, "%s%s %" PRIu64,
                                        i ? ", " : "", seccomp_syscall_name(top[i].nr) ?: "?",
                                        top[i].count);
        if (d.total)
                oci_log(OCI_LOG_INFO, "container \"%s\": %" PRIu64 " seccomp denials: %s", id,
                        d.total, line);
        _exit(0);
}

/*
 * Forks the container's seccomp monitor (policy cella): it holds the filter's listener
 * and the log and nothing else (not our stdio, which are the container's pipes, nor the
 * state lock), outlives create (the caller's subreaper inherits it) and exits when the
 * container's last process has. Returns 0 or -1 with errno.
 */
static int denial_monitor_start(int fd, const char *id)
{
        pid_t pid = fork();

        if (pid < 0)
                return -1;
        if (pid == 0) {
                int logfd = oci_log_fd(), keep[2], null = open("/dev/null", O_RDWR | O_CLOEXEC);
                unsigned lo;

                (void)prctl(PR_SET_NAME, "cella-oci-mon");
                (void)setsid();
                (void)signal(SIGPIPE, SIG_IGN);
                (void)signal(SIGHUP, SIG_IGN);
                (void)signal(SIGINT, SIG_IGN);
                for (int i = 0; i < 3; i++)
                        if (i != logfd)
                                (void)dup2(null, i);
                keep[0] = fd < logfd ? fd : logfd;
                keep[1] = fd < logfd ? logfd : fd;
                lo = 3;
                for (int i = 0; i < 2; i++) {
                        if (keep[i] >= (int)lo) {
                                if (keep[i] > (int)lo)
                                        (void)close_range(lo, (unsigned)keep[i] - 1, 0);
                                lo = (unsigned)keep[i] + 1;
                        }
                }
                (void)close_range(lo, ~0u, 0);
                denial_monitor(fd, id);
        }
        return 0;
}

/*
 * create: builds the container (docs/oci.md, "Commands"). On success the container's
 * init is our child, at its gate (exec.fifo), and *ret_pid its host pid. Returns 0 or 1
 * (logged).
 */
static int do_create(const CreateArgs *a, pid_t *ret_pid)
{
        _cleanup_free_ char *bundle = NULL, *text = NULL, *cfg_path = NULL;
        _cleanup_(oci_config_freep) OciConfig *cfg = NULL;
        OciSpecBuild b = {};
        Creation k = {.rootfd = -1, .dirfd = -1, .lockfd = -1};
        OciState st = {};
        SandboxError serr = {};
        char err[ERRLEN] = "";
        _cleanup_close_ int fifo = -EBADF, console = -EBADF;
        _cleanup_free_ int *extra = NULL;
        _cleanup_free_ char *sjson = NULL;
        SeccompProgram *plain = NULL;
        size_t n;
        int r, ret = 1;

        if (check_id(a->id))
                return 1;
        bundle = realpath(a->bundle ? a->bundle : ".", NULL);
        if (!bundle)
                return fail("bundle %s: %s", a->bundle ? a->bundle : ".", strerror(errno));
        if (asprintf(&cfg_path, "%s/config.json", bundle) < 0)
                return fail("out of memory");
        r = read_file_at(AT_FDCWD, cfg_path, OCI_CONFIG_MAX_BYTES, &text, &n);
        if (r < 0)
                return fail("%s: %s", cfg_path,
                            r == -EFBIG || r == -E2BIG ? "larger than 4 MiB" : strerror(-r));
        r = oci_config_parse(text, n, &cfg, err, sizeof err);
        if (r < 0)
                return config_fail(cfg_path, err);
        if (!cfg->process_set)
                return fail("%s: process: required by create", cfg_path);
        if (cfg->process.terminal && !a->console_socket)
                return fail("%s: process.terminal is true: --console-socket is required", cfg_path);
        if (!cfg->process.terminal && a->console_socket)
                return fail("--console-socket given but process.terminal is false in %s", cfg_path);

        r = oci_spec_build(cfg, bundle, &b, err, sizeof err);
        if (r < 0)
                return config_fail(cfg_path, err);
        /* The policy's notes are what every container of that config gets, not news: a
         * person at a terminal sees them as warnings; an engine's pipe (conmon shows
         * what it reads there on the user's terminal, at times) gets them only in
         * --log (as info lines) or with --debug, as runc says nothing on success. */
        STRV_FOREACH (note, b.notes)
                oci_log(isatty(STDERR_FILENO) ? OCI_LOG_WARNING : OCI_LOG_INFO,
                        "container \"%s\": %s", a->id, *note);

        k.rootfd = oci_root_open(g.root, true);
        if (k.rootfd < 0) {
                fail("state root %s: %s", g.root, strerror(-k.rootfd));
                goto out;
        }
        r = oci_container_open(k.rootfd, a->id, true, &k.dirfd, &k.lockfd);
        if (r == -EEXIST) {
                fail("container \"%s\" already exists", a->id);
                goto out;
        }
        if (r < 0) {
                fail("make the state of container \"%s\": %s", a->id, strerror(-r));
                goto out;
        }
        k.dir_made = true;
        r = file_create_at(k.dirfd, "config.json", text, n);
        if (r < 0) {
                fail("store the config of container \"%s\": %s", a->id, strerror(-r));
                goto out;
        }

        /* stdio: the caller's 0, 1, 2 (conmon's pipes), or a pty (console socket). */
        for (int i = 0; i < 3; i++)
                b.spec.stdio[i] = fd_is_open(i) ? i : -1;
        if (a->console_socket) {
                console = console_connect(a->console_socket);
                if (console < 0) {
                        fail("console socket %s: %s", a->console_socket, strerror(-console));
                        goto out;
                }
                b.spec.pty_socket = console;
                b.spec.pty_rows = cfg->process.console_size.height;
                b.spec.pty_cols = cfg->process.console_size.width;
        }
        /* --preserve-fds N (and systemd's LISTEN_FDS): fds 3 .. 3+N-1 kept as they are. */
        {
                const char *lf = getenv("LISTEN_FDS");
                unsigned total = a->preserve_fds + (lf ? (unsigned)strtoul(lf, NULL, 10) : 0);

                if (total > 0) {
                        if (total > 4096) {
                                fail("--preserve-fds %u: too many (at most 4096)", total);
                                goto out;
                        }
                        b.spec.channel_fd = fd_is_open(3) ? 3 : -1;
                        if (total > 1) {
                                extra = calloc(total - 1, sizeof *extra);
                                if (!extra) {
                                        fail("out of memory");
                                        goto out;
                                }
                                for (unsigned i = 0; i + 1 < total; i++) {
                                        if (!fd_is_open((int)(4 + i))) {
                                                fail("--preserve-fds: fd %u is not open", 4 + i);
                                                goto out;
                                        }
                                        extra[i] = (int)(4 + i);
                                }
                                b.spec.extra_fds = extra;
                                b.spec.n_extra_fds = total - 1;
                        }
                } else
                        b.spec.channel_fd = -1;
        }

        /* The gate: the app waits on exec.fifo until `start`. */
        if (mkfifoat(k.dirfd, "exec.fifo", 0622) < 0 ||
            fchmodat(k.dirfd, "exec.fifo", 0622, 0) < 0) {
                fail("make the exec fifo of container \"%s\": %s", a->id, strerror(errno));
                goto out;
        }
        fifo = openat(k.dirfd, "exec.fifo", O_PATH | O_CLOEXEC);
        if (fifo < 0) {
                fail("open the exec fifo of container \"%s\": %s", a->id, strerror(errno));
                goto out;
        }
        b.spec.start_fifo_fd = fifo;

        /* The container's cgroup: exactly linux.cgroupsPath (cgroups.h). */
        r = oci_cgroup_prepare(cfg->cgroups_path, a->id, g.systemd_cgroup, b.spec.limits.resources,
                               &k.cgm, &k.scope, err, sizeof err);
        if (r < 0) {
                fail("container \"%s\": %s", a->id, err);
                goto out;
        }
        b.spec.cgroups = k.cgm;
        b.spec.cgroup_label = a->id;
        /* What cgroup v2 cannot take, said, not silent (docs/oci.md "Cgroups"): runc
         * loads an eBPF device program there, cella-oci none; v2 has no swappiness and
         * no switch for the OOM killer. */
        if (cgroup_manager_mode(k.cgm) == CGROUP_MODE_V2) {
                if (b.resources.devices_set)
                        oci_log(OCI_LOG_WARNING,
                                "container \"%s\": linux.resources.devices: not enforced on "
                                "cgroup v2 (no eBPF device program; the root is nodev)",
                                a->id);
                if (b.resources.swappiness_set)
                        oci_log(OCI_LOG_WARNING,
                                "container \"%s\": linux.resources.memory.swappiness: not "
                                "applied: cgroup v2 has no per-cgroup swappiness",
                                a->id);
                if (b.resources.oom_kill_disable)
                        oci_log(OCI_LOG_WARNING,
                                "container \"%s\": linux.resources.memory.disableOOMKiller: not "
                                "applied: cgroup v2 cannot disable the OOM killer",
                                a->id);
        }

        /* One unprivileged host id of its own under policy cella. */
        if (b.policy == OCI_POLICY_CELLA) {
                r = oci_host_id_take(k.rootfd, a->id, &k.host_id);
                if (r < 0) {
                        fail("container \"%s\": no free host id in %u-%u: %s", a->id,
                             OCI_HOST_ID_BASE, OCI_HOST_ID_BASE + OCI_HOST_ID_COUNT - 1,
                             strerror(-r));
                        goto out;
                }
                /* The one mapped id: the config's uid and gid inside (0 in most images),
                 * this host id outside (spec.h, policy cella). */
                r = oci_spec_build_set_host_ids(&b, k.host_id, k.host_id);
                if (r < 0) {
                        fail("container \"%s\": map host id %u: %s", a->id, (unsigned)k.host_id,
                             strerror(-r));
                        goto out;
                }
        }
        /* A config without a hostname (`runc spec`'s has one; a bare one may not): the
         * container's id, truncated, in a uts namespace of its own (runc leaves the
         * host's name there; cella does not show it). */
        if (!b.spec.hostname)
                b.spec.hostname = a->id;
        b.spec.init_path = init_path();
        /* Under policy cella, cella's allowlist with its denials sent to a listener, which
         * a monitor of ours answers (EPERM), counts and logs (denial_monitor()). */
        if (b.policy == OCI_POLICY_CELLA) {
                r = seccomp_program_builtin(&(SeccompOptions){.notify = true}, &plain);
                if (r < 0) {
                        fail("build the seccomp filter: %s", strerror(-r));
                        goto out;
                }
                b.spec.seccomp = plain;
        }

        r = sandbox_spawn(&b.spec, &k.sb, &serr);
        if (r < 0) {
                char why[ERRLEN];

                sandbox_error_text(&serr, r, b.spec.argv ? b.spec.argv[0] : NULL, why, sizeof why);
                fail("container \"%s\": %s", a->id, why);
                goto out;
        }
        if (k.scope) {
                r = oci_systemd_scope_attach(k.scope, k.sb->pid, err, sizeof err);
                if (r < 0) {
                        fail("container \"%s\": %s", a->id, err);
                        goto out;
                }
        }

        /* The state. */
        st.id = strdup(a->id);
        st.bundle = strdup(bundle);
        st.rootfs = strdup(b.rootfs_path ? b.rootfs_path : "");
        st.created = now_rfc3339();
        st.pid = k.sb->pid;
        st.cgroup_path = k.sb->cgroup ? strdup(cgroup_name(k.sb->cgroup)) : NULL;
        st.systemd = k.scope != NULL;
        st.systemd_unit = k.scope ? strdup(oci_systemd_scope_unit(k.scope)) : NULL;
        st.host_uid = k.host_id;
        st.policy = strdup(oci_policy_to_string(b.policy));
        for (size_t i = 0; i < b.spec.n_namespaces; i++)
                st.ns_flags |= b.spec.namespaces[i].type;
        if (!st.id || !st.bundle || !st.rootfs || !st.created || !st.policy) {
                fail("out of memory");
                goto out_state;
        }
        for (size_t i = 0; i < cfg->n_annotations; i++)
                if (strv_extend(&st.annotation_keys, cfg->annotation_keys[i]) < 0 ||
                    strv_extend(&st.annotation_values, cfg->annotation_values[i]) < 0) {
                        fail("out of memory");
                        goto out_state;
                }
        st.n_annotations = cfg->n_annotations;
        r = oci_proc_start_time(st.pid, &st.pid_start);
        if (r >= 0)
                r = oci_state_write(k.dirfd, &st);
        if (r < 0) {
                fail("record the state of container \"%s\": %s", a->id, strerror(-r));
                goto out_state;
        }

        /* Hooks with the container made, before its app runs (docs/oci.md "Hooks"). */
        sjson = state_json(&st, OCI_STATUS_CREATED);
        if (!sjson) {
                fail("out of memory");
                goto out_state;
        }
        {
                static const OciHookKind kinds[] = {OCI_HOOK_PRESTART, OCI_HOOK_CREATE_RUNTIME,
                                                    OCI_HOOK_CREATE_CONTAINER};

                /* createContainer in the container's namespaces, its path and files the
                 * runtime's (hooks.h, OciHookNs); the others in the runtime's. */
                const OciHookNs in_container = {.pidfd = k.sb->pidfd, .resolve_in_runtime = true};

                for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                        r = oci_hooks_run(cfg, kinds[i],
                                          kinds[i] == OCI_HOOK_CREATE_CONTAINER ? &in_container
                                                                                : NULL,
                                          sjson, true, err, sizeof err);
                        if (r < 0) {
                                fail("container \"%s\": %s", a->id, err);
                                goto out_state;
                        }
                }
        }
        if (a->pid_file) {
                r = oci_pid_file_write(a->pid_file, st.pid);
                if (r < 0) {
                        fail("pid file %s: %s", a->pid_file, strerror(-r));
                        goto out_state;
                }
        }
        oci_log(OCI_LOG_INFO,
                "container \"%s\" created: pid %d, bundle %s, policy %s, host id %u, cgroup %s",
                a->id, (int)st.pid, bundle, st.policy, (unsigned)st.host_uid,
                st.cgroup_path ? st.cgroup_path : "(none)");
        if (ret_pid)
                *ret_pid = st.pid;
        if (k.sb->seccomp_notify_fd >= 0 &&
            denial_monitor_start(k.sb->seccomp_notify_fd, a->id) < 0) {
                /* Without it, a denied call would wait for an answer nobody gives. */
                fail("container \"%s\": start its seccomp monitor: %s", a->id, strerror(errno));
                goto out_state;
        }
        (void)sandbox_release(TAKE_PTR(k.sb));
        oci_systemd_scope_free(TAKE_PTR(k.scope));
        k.host_id = 0;
        k.dir_made = false;
        ret = 0;
out_state:
        oci_state_done(&st);
out:
        if (ret != 0)
                creation_undo(&k, a->id);
        oci_systemd_scope_free(k.scope);
        /* After the Sandbox: its cgroup handle needs the manager. */
        cgroup_manager_free(k.cgm);
        safe_close(k.lockfd);
        safe_close(k.dirfd);
        safe_close(k.rootfd);
        oci_spec_build_done(&b);
        seccomp_program_free(plain);
        return ret;
}

/* ---- start, state, kill, delete, pause, resume, ps ---------------------------------- */

/*
 * Opens the gate: exec.fifo read (non-blocking open, then a poll that also watches
 * init, so that a container whose app died before its gate is an error, not a hang),
 * one byte, then the fifo unlinked. Returns 0 or 1 (logged).
 */
static int gate_open(Container *c)
{
        _cleanup_close_ int fifo = -EBADF;
        char byte;

        fifo = openat(c->dirfd, "exec.fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        if (fifo < 0)
                return fail("container \"%s\": open its exec fifo: %s", c->st.id, strerror(errno));
        for (;;) {
                struct pollfd p[2] = {{.fd = fifo, .events = POLLIN},
                                      {.fd = c->pidfd, .events = POLLIN}};
                ssize_t n;
                int r = poll(p, 2, -1);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return fail("container \"%s\": poll its exec fifo: %s", c->st.id,
                                    strerror(errno));
                if (p[0].revents & POLLIN) {
                        n = read(fifo, &byte, 1);
                        if (n == 1)
                                break;
                        if (n < 0 && errno == EAGAIN)
                                continue;
                }
                if (p[0].revents & POLLHUP)
                        return fail("container \"%s\": its app left the gate without starting",
                                    c->st.id);
                if (p[1].revents & POLLIN)
                        return fail("container \"%s\": its init exited before the start", c->st.id);
        }
        (void)unlinkat(c->dirfd, "exec.fifo", 0);
        return 0;
}

static int do_start(const char *id)
{
        _cleanup_(container_done) Container c = {};
        _cleanup_(oci_config_freep) OciConfig *cfg = NULL;
        _cleanup_free_ char *sjson = NULL;
        char err[ERRLEN];

        if (container_load(id, &c))
                return 1;
        if (c.status != OCI_STATUS_CREATED)
                return fail("cannot start container \"%s\": it is %s, not created", id,
                            oci_status_to_string(c.status));
        cfg = container_config(&c);
        if (!cfg)
                return 1;
        sjson = state_json(&c.st, c.status);
        if (!sjson)
                return fail("out of memory");
        /* In the container's namespaces and root, before the gate lets the app's
         * execve go (runtime-spec: "before the user-specified process is executed"). */
        if (oci_hooks_run(cfg, OCI_HOOK_START_CONTAINER,
                          &(const OciHookNs){.pidfd = c.pidfd, .resolve_in_runtime = false}, sjson,
                          true, err, sizeof err) < 0) {
                (void)syscall(SYS_pidfd_send_signal, c.pidfd, SIGKILL, NULL, 0);
                return fail("container \"%s\": %s", id, err);
        }
        if (gate_open(&c))
                return 1;
        oci_log(OCI_LOG_INFO, "container \"%s\" started", id);
        free(sjson);
        sjson = state_json(&c.st, OCI_STATUS_RUNNING);
        if (sjson)
                (void)oci_hooks_run(cfg, OCI_HOOK_POSTSTART, NULL, sjson, false, err, sizeof err);
        return 0;
}

static int do_state(const char *id)
{
        _cleanup_(container_done) Container c = {};
        _cleanup_free_ char *j = NULL;

        if (container_load(id, &c))
                return 1;
        j = oci_state_to_json(&c.st, c.status, true);
        if (!j)
                return fail("out of memory");
        printf("%s\n", j);
        return fflush(stdout) == 0 ? 0 : 1;
}

static int do_kill(const char *id, const char *signame, bool all)
{
        _cleanup_(container_done) Container c = {};
        int sig = signame ? signal_parse(signame) : SIGTERM;

        if (sig < 0)
                return fail("invalid signal \"%s\": a name (TERM, SIGTERM) or a number", signame);
        if (container_load(id, &c))
                return 1;
        if (c.status == OCI_STATUS_STOPPED && !all)
                return fail("container \"%s\" is not running", id);
        if (all) {
                _cleanup_free_ pid_t *pids = NULL;
                size_t n;
                int r;

                if (sig == SIGKILL && c.cg) {
                        r = cgroup_kill(c.cg);
                        if (r < 0)
                                return fail("kill every process of container \"%s\": %s", id,
                                            strerror(-r));
                } else {
                        r = container_pids(&c, &pids, &n);
                        if (r < 0)
                                return fail("list the processes of container \"%s\": %s", id,
                                            strerror(-r));
                        for (size_t i = 0; i < n; i++)
                                (void)kill(pids[i], sig);
                }
        } else if (syscall(SYS_pidfd_send_signal, c.pidfd, sig, NULL, 0) < 0)
                return fail("signal container \"%s\": %s", id, strerror(errno));
        /* Frozen tasks act on SIGKILL only once thawed (v1 freezer). */
        if (sig == SIGKILL && c.status == OCI_STATUS_PAUSED && c.cg)
                (void)cgroup_freeze(c.cg, false);
        oci_log(OCI_LOG_INFO, "container \"%s\": signal %d (%s)%s", id, sig,
                sigabbrev_np(sig) ?: "", all ? " to every process" : "");
        return 0;
}

/* Waits until pidfd's process has exited, at most ms. */
static bool pidfd_wait_exit(int pidfd, int ms)
{
        struct pollfd p = {.fd = pidfd, .events = POLLIN};

        return pidfd < 0 || poll(&p, 1, ms) > 0;
}

static int do_delete(const char *id, bool force)
{
        _cleanup_(container_done) Container c = {};
        _cleanup_(oci_config_freep) OciConfig *cfg = NULL;
        _cleanup_free_ char *sjson = NULL;
        char err[ERRLEN];
        int r;

        /* runc: delete --force of a missing container is no error (a directory without
         * a state, an interrupted create's, is removed). */
        if (force && oci_id_valid(id)) {
                _cleanup_close_ int rootfd = oci_root_open(g.root, false);
                struct stat st;

                if (rootfd == -ENOENT ||
                    (rootfd >= 0 && fstatat(rootfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
                     errno == ENOENT))
                        return 0;
                if (rootfd >= 0 && S_ISDIR(st.st_mode)) {
                        char path[OCI_ID_MAX + 16];

                        snprintf(path, sizeof path, "%s/state.json", id);
                        if (faccessat(rootfd, path, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
                            errno == ENOENT)
                                return oci_container_remove(rootfd, id) < 0 ? 1 : 0;
                }
        }
        if (container_load(id, &c))
                return 1;
        if ((c.status == OCI_STATUS_RUNNING || c.status == OCI_STATUS_PAUSED) && !force)
                return fail("cannot delete container \"%s\": it is %s (stop it first, or "
                            "delete --force)",
                            id, oci_status_to_string(c.status));
        if (c.status != OCI_STATUS_STOPPED) {
                (void)syscall(SYS_pidfd_send_signal, c.pidfd, SIGKILL, NULL, 0);
                if (c.cg)
                        (void)cgroup_freeze(c.cg, false);
                if (!pidfd_wait_exit(c.pidfd, 5000))
                        oci_log(OCI_LOG_WARNING,
                                "container \"%s\": its init outlived SIGKILL for 5 s", id);
        }
        if (c.cg) {
                r = cgroup_kill_wait(c.cg, 5000);
                if (r < 0)
                        oci_log(OCI_LOG_WARNING, "container \"%s\": processes left in %s: %s", id,
                                c.st.cgroup_path, strerror(-r));
                c.cg = cgroup_destroy(c.cg);
        }
        if (c.st.systemd_unit)
                (void)oci_systemd_unit_stop(c.st.systemd_unit);
        cfg = container_config(&c);
        sjson = state_json(&c.st, OCI_STATUS_STOPPED);
        if (cfg && sjson)
                (void)oci_hooks_run(cfg, OCI_HOOK_POSTSTOP, NULL, sjson, false, err, sizeof err);
        if (c.st.host_uid)
                (void)oci_host_id_release(c.rootfd, id, c.st.host_uid);
        r = oci_container_remove(c.rootfd, id);
        if (r < 0)
                return fail("remove the state of container \"%s\": %s", id, strerror(-r));
        oci_log(OCI_LOG_INFO, "container \"%s\" deleted", id);
        return 0;
}

static int do_pause(const char *id, bool pause)
{
        _cleanup_(container_done) Container c = {};
        int r;

        if (container_load(id, &c))
                return 1;
        if (pause && c.status != OCI_STATUS_RUNNING)
                return fail("cannot pause container \"%s\": it is %s", id,
                            oci_status_to_string(c.status));
        if (!pause && c.status != OCI_STATUS_PAUSED)
                return fail("cannot resume container \"%s\": it is %s, not paused", id,
                            oci_status_to_string(c.status));
        if (!c.cg)
                return fail("container \"%s\" has no cgroup to freeze", id);
        r = cgroup_freeze(c.cg, pause);
        if (r < 0)
                return fail("%s container \"%s\": %s", pause ? "pause" : "resume", id,
                            strerror(-r));
        oci_log(OCI_LOG_INFO, "container \"%s\" %s", id, pause ? "paused" : "resumed");
        return 0;
}

static int do_ps(const char *id, bool json)
{
        _cleanup_(container_done) Container c = {};
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        int r;

        if (container_load(id, &c))
                return 1;
        if (c.cg) {
                r = container_pids(&c, &pids, &n);
                if (r < 0)
                        return fail("list the processes of container \"%s\": %s", id, strerror(-r));
        }
        if (json) {
                printf("[");
                for (size_t i = 0; i < n; i++)
                        printf("%s%d", i ? "," : "", (int)pids[i]);
                printf("]\n");
        } else {
                printf("%-10s %s\n", "PID", "CMD");
                for (size_t i = 0; i < n; i++) {
                        _cleanup_free_ char *comm = NULL;
                        char path[64];
                        size_t len = 0;

                        snprintf(path, sizeof path, "/proc/%d/comm", (int)pids[i]);
                        if (read_file_at(AT_FDCWD, path, 64, &comm, &len) < 0)
                                continue;
                        comm[strcspn(comm, "\n")] = 0;
                        for (char *p = comm; *p; p++)
                                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                                        *p = '?';
                        printf("%-10d %s\n", (int)pids[i], comm);
                }
        }
        return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- features ---------------------------------------------------------------- */

static int do_features(void)
{
        static const char *const ns[] = {"cgroup", "ipc", "mount", "network", "pid", "user", "uts"};
        static const char *const hooks[] = {"prestart",       "createRuntime", "createContainer",
                                            "startContainer", "poststart",     "poststop"};
        static const char *const mount_options[] = {
                "async",       "atime",   "bind",        "defaults",   "dev",    "diratime",
                "exec",        "noatime", "nodev",       "nodiratime", "noexec", "nosuid",
                "private",     "rbind",   "relatime",    "remount",    "ro",     "rprivate",
                "rshared",     "rslave",  "runbindable", "rw",         "shared", "slave",
                "strictatime", "suid",    "sync",        "unbindable"};
        static const char *const actions[] = {
                "SCMP_ACT_ALLOW",       "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS",
                "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",   "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"};
        static const char *const ops[] = {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                                          "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
                                          "SCMP_CMP_NE"};
        static const char *const archs[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                            "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
        json_t *o, *linux_, *caps, *a;
        char *text;

#define ARR(list)                                                                                  \
        ({                                                                                         \
                json_t *_a = json_array();                                                         \
                for (size_t _i = 0; _i < ELEMENTSOF(list); _i++)                                   \
                        json_array_append_new(_a, json_string(list[_i]));                          \
                _a;                                                                                \
        })
        caps = json_array();
        /* Every capability the parser knows (config.c), by number. */
        for (int i = 0; oci_capability_name(i); i++)
                json_array_append_new(caps, json_string(oci_capability_name(i)));
        linux_ = json_pack("{s:o, s:o, s:{s:b, s:b, s:b, s:b, s:b}, s:{s:b, s:o, s:o, s:o}, "
                           "s:{s:b}, s:{s:b}, s:{s:b, s:b}}",
                           "namespaces", ARR(ns), "capabilities", caps, "cgroup", "v1", 1, "v2", 1,
                           "systemd", 1, "systemdUser", 0, "rdma", 0, "seccomp", "enabled", 1,
                           "actions", ARR(actions), "operators", ARR(ops), "archs", ARR(archs),
                           "apparmor", "enabled", 0, "selinux", "enabled", 0, "intelRdt", "enabled",
                           0, "schemata", 0);
        a = json_pack("{s:s, s:s}", "io.cella.policy", "cella|compat (default cella)",
                      "io.cella.version", CELLA_OCI_VERSION);
        o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "ociVersionMin", OCI_VERSION_MIN,
                      "ociVersionMax", OCI_VERSION_MAX, "hooks", ARR(hooks), "mountOptions",
                      ARR(mount_options), "linux", linux_, "annotations", a);
#undef ARR
        if (!o)
                return fail("out of memory");
        text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!text)
                return fail("out of memory");
        printf("%s\n", text);
        free(text);
        return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- exec -------------------------------------------------------------------- */

typedef struct ExecArgs {
        const char *id;
        const char *process; /* --process FILE */
        char **args;         /* the command, when no --process */
        bool tty, detach, no_new_privs, ignore_paused;
        const char *console_socket, *pid_file, *cwd, *user;
        char **env, **gids, **caps;
} ExecArgs;

/* The exec's process JSON: --process's file, else the container's process with the
 * command line's changes (runc's exec: args, --env added, --cwd, --user, --tty,
 * --additional-gids, --cap added to every set, --no-new-privs). NULL with the error
 * logged. */
static char *exec_process_text(const Container *c, const ExecArgs *a)
{
        _cleanup_free_ char *text = NULL;
        json_t *cfg, *p, *arr;
        char *out = NULL;
        json_error_t je;
        size_t n;
        int r;

        if (a->process) {
                r = read_file_at(AT_FDCWD, a->process, OCI_CONFIG_MAX_BYTES, &text, &n);
                if (r < 0) {
                        fail("--process %s: %s", a->process, strerror(-r));
                        return NULL;
                }
                return TAKE_PTR(text);
        }
        if (!a->args || !a->args[0]) {
                fail("exec: a command (after the container id) or --process is required");
                return NULL;
        }
        r = read_file_at(c->dirfd, "config.json", OCI_CONFIG_MAX_BYTES, &text, &n);
        if (r < 0) {
                fail("read the stored config of container \"%s\": %s", c->st.id, strerror(-r));
                return NULL;
        }
        cfg = json_loadb(text, n, 0, &je);
        p = json_object_get(cfg, "process");
        if (!json_is_object(p)) {
                json_decref(cfg);
                fail("the stored config of container \"%s\" has no process", c->st.id);
                return NULL;
        }
        arr = json_array();
        STRV_FOREACH (s, a->args)
                json_array_append_new(arr, json_string(*s));
        json_object_set_new(p, "args", arr);
        json_object_set_new(p, "terminal", json_boolean(a->tty));
        if (a->cwd)
                json_object_set_new(p, "cwd", json_string(a->cwd));
        if (a->env) {
                json_t *env = json_object_get(p, "env");

                if (!json_is_array(env)) {
                        env = json_array();
                        json_object_set_new(p, "env", env);
                }
                STRV_FOREACH (s, a->env)
                        json_array_append_new(env, json_string(*s));
        }
        if (a->user || a->gids) {
                json_t *user = json_object_get(p, "user");
                unsigned long uid = 0, gid = 0;
                char *end;

                if (!json_is_object(user)) {
                        user = json_object();
                        json_object_set_new(p, "user", user);
                }
                if (a->user) {
                        errno = 0;
                        uid = strtoul(a->user, &end, 10);
                        if (errno || end == a->user || (*end && *end != ':') ||
                            uid > UINT32_MAX - 1)
                                goto bad_user;
                        json_object_set_new(user, "uid", json_integer((json_int_t)uid));
                        if (*end == ':') {
                                const char *g0 = end + 1;

                                gid = strtoul(g0, &end, 10);
                                if (errno || end == g0 || *end || gid > UINT32_MAX - 1)
                                        goto bad_user;
                                json_object_set_new(user, "gid", json_integer((json_int_t)gid));
                        }
                }
                if (a->gids) {
                        json_t *ga = json_array();

                        STRV_FOREACH (s, a->gids) {
                                errno = 0;
                                gid = strtoul(*s, &end, 10);
                                if (errno || end == *s || *end || gid > UINT32_MAX - 1) {
                                        json_decref(ga);
                                        json_decref(cfg);
                                        fail("--additional-gids %s: not a gid", *s);
                                        return NULL;
                                }
                                json_array_append_new(ga, json_integer((json_int_t)gid));
                        }
                        json_object_set_new(user, "additionalGids", ga);
                }
        }
        if (a->caps) {
                static const char *const sets[] = {"bounding", "effective", "permitted"};
                json_t *caps = json_object_get(p, "capabilities");

                if (!json_is_object(caps)) {
                        caps = json_object();
                        json_object_set_new(p, "capabilities", caps);
                }
                for (size_t i = 0; i < ELEMENTSOF(sets); i++) {
                        json_t *set = json_object_get(caps, sets[i]);

                        if (!json_is_array(set)) {
                                set = json_array();
                                json_object_set_new(caps, sets[i], set);
                        }
                        STRV_FOREACH (s, a->caps)
                                json_array_append_new(set, json_string(*s));
                }
        }
        if (a->no_new_privs)
                json_object_set_new(p, "noNewPrivileges", json_true());
        out = json_dumps(p, JSON_COMPACT);
        json_decref(cfg);
        if (!out)
                fail("out of memory");
        return out;
bad_user:
        json_decref(cfg);
        fail("--user %s: not <uid>[:<gid>]", a->user);
        return NULL;
}

/* Waits for the exec helper (pidfd), passing SIGINT, SIGTERM, SIGHUP and SIGQUIT on to
 * it; returns its exit status (the command's: 128+N after signal N). */
static int exec_wait(pid_t pid, int pidfd, const sigset_t *passed)
{
        _cleanup_close_ int sfd = signalfd(-1, passed, SFD_CLOEXEC | SFD_NONBLOCK);
        siginfo_t si = {};

        for (;;) {
                struct pollfd p[2] = {{.fd = pidfd, .events = POLLIN},
                                      {.fd = sfd, .events = POLLIN}};
                struct signalfd_siginfo ssi;

                if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents)
                        break;
                while (sfd >= 0 && read(sfd, &ssi, sizeof ssi) == sizeof ssi)
                        (void)kill(pid, (int)ssi.ssi_signo);
        }
        if (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0)
                return 255;
        return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

static int do_exec(const ExecArgs *a)
{
        _cleanup_(container_done) Container c = {};
        _cleanup_(oci_config_freep) OciConfig *cfg = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int tty = -EBADF, helper_fd = -EBADF;
        _cleanup_(strv_freep) char **argv = NULL;
        OciProcess saved, p = {};
        OciSpecBuild b = {};
        SeccompProgram *plain = NULL;
        SandboxError serr = {};
        SandboxEnter e = {};
        char err[ERRLEN] = "";
        sigset_t passed;
        pid_t helper = -1;
        int r, ret = 1;

        if (container_load(a->id, &c))
                return 1;
        if (c.status == OCI_STATUS_STOPPED)
                return fail("cannot exec in container \"%s\": it is stopped", a->id);
        if (c.status == OCI_STATUS_PAUSED && !a->ignore_paused)
                return fail("cannot exec in container \"%s\": it is paused (--ignore-paused)",
                            a->id);
        text = exec_process_text(&c, a);
        if (!text)
                return 1;
        r = oci_process_parse(text, strlen(text), &p, err, sizeof err);
        if (r < 0)
                return fail("%s: %s", a->process ? a->process : "exec", err);
        if (p.terminal && !a->console_socket) {
                oci_process_done(&p);
                return fail("exec with a terminal needs --console-socket");
        }
        cfg = container_config(&c);
        if (!cfg) {
                oci_process_done(&p);
                return 1;
        }
        /* The exec's process under the container's policy: the same mapping as create's. */
        saved = cfg->process;
        cfg->process = p;
        r = oci_spec_build(cfg, c.st.bundle, &b, err, sizeof err);
        cfg->process = saved;
        if (r < 0) {
                fail("exec in container \"%s\": %s", a->id, err);
                goto out;
        }
        /* The container's own notes were said by create: only --debug repeats them. */
        STRV_FOREACH (note, b.notes)
                oci_log(OCI_LOG_DEBUG, "exec in container \"%s\": %s", a->id, *note);
        if (p.terminal) {
                tty = console_connect(a->console_socket);
                if (tty < 0) {
                        fail("console socket %s: %s", a->console_socket, strerror(-tty));
                        goto out;
                }
        }
        e.seccomp = b.spec.seccomp;
        if (!e.seccomp || e.seccomp->notify) {
                r = seccomp_program_builtin(&(SeccompOptions){.notify = false}, &plain);
                if (r < 0) {
                        fail("build the seccomp filter: %s", strerror(-r));
                        goto out;
                }
                e.seccomp = plain;
        }
        e.pidfd = c.pidfd;
        e.pid = c.st.pid;
        e.cgroup = c.cg;
        /* argv[0] the path create's lookup found (the process's PATH in the root), as
         * sandbox_enter() itself looks names up in /usr/bin and /bin only. */
        argv = strv_copy(b.spec.argv);
        if (!argv) {
                fail("out of memory");
                goto out;
        }
        if (b.spec.exec_path && b.spec.exec_path[0] == '/') {
                char *p0 = strdup(b.spec.exec_path);

                if (!p0) {
                        fail("out of memory");
                        goto out;
                }
                free(argv[0]);
                argv[0] = p0;
        }
        e.argv = argv;
        e.envp = b.spec.envp;
        for (int i = 0; i < 3; i++)
                e.stdio[i] = fd_is_open(i) ? i : -1;
        e.cwd = b.spec.workdir;
        e.tty_socket = tty >= 0 ? tty : -1;
        e.tty_rows = p.console_size.height;
        e.tty_cols = p.console_size.width;
        e.uid = b.spec.app_uid;
        e.gid = b.spec.app_gid;
        e.ids_set = b.spec.ids_set;
        e.groups = b.spec.app_groups;
        e.n_groups = b.spec.n_app_groups;
        e.caps = b.spec.caps;
        e.allow_new_privs = b.spec.allow_new_privs;
        e.ns_flags = c.st.ns_flags;

        sigemptyset(&passed);
        sigaddset(&passed, SIGINT);
        sigaddset(&passed, SIGTERM);
        sigaddset(&passed, SIGHUP);
        sigaddset(&passed, SIGQUIT);

        if (a->detach) {
                /* A keeper of ours runs the command (the helper dies with the thread that
                 * made it) and exits with its status: the pid file names the keeper, which
                 * the caller's subreaper inherits when we exit. */
                _cleanup_close_pair_ int pp[2] = {-EBADF, -EBADF};
                char msg[ERRLEN + 1] = "";
                ssize_t n;
                pid_t keeper;

                if (pipe2(pp, O_CLOEXEC) < 0) {
                        fail("pipe: %s", strerror(errno));
                        goto out;
                }
                keeper = fork();
                if (keeper < 0) {
                        fail("fork: %s", strerror(errno));
                        goto out;
                }
                if (keeper == 0) {
                        int null, keep[] = {pp[1], e.pidfd, tty, oci_log_fd()};

                        /* Nothing else of ours lives on with the command: above all not
                         * the container's lock, which every later command takes. */
                        pp[0] = safe_close(pp[0]);
                        for (int fd = 3, max = (int)sysconf(_SC_OPEN_MAX); fd < max && fd < 65536;
                             fd++) {
                                bool kept = false;

                                for (size_t i = 0; i < ELEMENTSOF(keep); i++)
                                        kept |= keep[i] == fd;
                                if (!kept)
                                        (void)close(fd);
                        }
                        (void)sigprocmask(SIG_BLOCK, &passed, NULL);
                        r = sandbox_enter(&e, &helper, &helper_fd, &serr);
                        if (r < 0) {
                                sandbox_error_text(&serr, r, e.argv[0], msg, sizeof msg);
                                (void)loop_write(pp[1], msg, strlen(msg));
                                _exit(SANDBOX_ENTER_FAILED);
                        }
                        pp[1] = safe_close(pp[1]);
                        null = open("/dev/null", O_RDWR | O_CLOEXEC);
                        for (int i = 0; null >= 0 && i < 3; i++)
                                (void)dup2(null, i);
                        _exit(exec_wait(helper, helper_fd, &passed));
                }
                pp[1] = safe_close(pp[1]);
                n = read(pp[0], msg, sizeof msg - 1);
                if (n > 0) {
                        msg[n] = 0;
                        (void)waitpid(keeper, NULL, 0);
                        fail("exec in container \"%s\": %s", a->id, msg);
                        goto out;
                }
                if (a->pid_file && (r = oci_pid_file_write(a->pid_file, keeper)) < 0) {
                        fail("pid file %s: %s", a->pid_file, strerror(-r));
                        goto out;
                }
                oci_log(OCI_LOG_INFO, "exec in container \"%s\": %s, detached, pid %d", a->id,
                        e.argv[0], (int)keeper);
                ret = 0;
                goto out;
        }

        (void)sigprocmask(SIG_BLOCK, &passed, NULL);
        r = sandbox_enter(&e, &helper, &helper_fd, &serr);
        /* The container's lock is not held while the command runs (an interactive
         * shell would hold every kill, state and delete of the container). */
        c.lockfd = safe_close(c.lockfd);
        if (r < 0) {
                char why[ERRLEN];

                sandbox_error_text(&serr, r, e.argv[0], why, sizeof why);
                fail("exec in container \"%s\": %s", a->id, why);
                goto out;
        }
        if (a->pid_file && (r = oci_pid_file_write(a->pid_file, helper)) < 0)
                oci_log(OCI_LOG_WARNING, "pid file %s: %s", a->pid_file, strerror(-r));
        oci_log(OCI_LOG_INFO, "exec in container \"%s\": %s, pid %d", a->id, e.argv[0],
                (int)helper);
        tty = safe_close(tty);
        ret = exec_wait(helper, helper_fd, &passed);
out:
        oci_spec_build_done(&b);
        oci_process_done(&p);
        seccomp_program_free(plain);
        return ret;
}

/* ---- the command line ----------------------------------------------------------- */

static void usage(FILE *f)
{
        fputs("Usage: cella-oci [global options] COMMAND [options] ID [args]\n"
              "\n"
              "An OCI runtime with runc's command line: runs containers in cella sandboxes.\n"
              "\n"
              "Commands:\n"
              "  create [--bundle DIR] [--pid-file F] [--console-socket S] [--preserve-fds N] ID\n"
              "  start ID                 let the created container's process run\n"
              "  run [create's options] [--detach] ID   create and start\n"
              "  state ID                 its state, as JSON\n"
              "  kill [--all] ID [SIGNAL] signal it (default SIGTERM)\n"
              "  delete [--force] ID      remove it (--force: kill it first)\n"
              "  exec [options] ID [COMMAND...]  run a command in it\n"
              "  ps [--format table|json] ID     its processes\n"
              "  pause ID, resume ID      freeze and thaw it\n"
              "  features                 what this runtime supports, as JSON\n"
              "\n"
              "Global options:\n"
              "  --root DIR               state directory (default " OCI_STATE_ROOT_DEFAULT ")\n"
              "  --log FILE               log file (default stderr)\n"
              "  --log-format text|json   log line format\n"
              "  --debug                  debug lines in the log too\n"
              "  --systemd-cgroup         cgroupsPath is \"slice:prefix:name\", the cgroup a\n"
              "                           systemd scope\n"
              "  --rootless true|false|auto   accepted; cella-oci always runs as root\n"
              "  --version, --help\n"
              "\n"
              "See docs/oci.md.\n",
              f);
}

static int bad_usage(const char *cmd, const char *what)
{
        return fail("%s: %s (see cella-oci --help)", cmd, what);
}

/* One positional id and nothing else after the options. */
static const char *one_id(const char *cmd, int argc, char **argv)
{
        if (optind >= argc) {
                bad_usage(cmd, "a container id is required");
                return NULL;
        }
        if (optind + 1 != argc) {
                bad_usage(cmd, "too many arguments");
                return NULL;
        }
        return argv[optind];
}

enum {
        OPT_BUNDLE = 'b',
        OPT_PID_FILE = 0x100,
        OPT_CONSOLE_SOCKET,
        OPT_NO_PIVOT,
        OPT_NO_NEW_KEYRING,
        OPT_PRESERVE_FDS,
        OPT_FORMAT,
        OPT_CWD,
        OPT_NO_NEW_PRIVS,
        OPT_PROCESS_LABEL,
        OPT_APPARMOR,
        OPT_CGROUP,
        OPT_IGNORE_PAUSED,
        OPT_KEEP,
        OPT_NO_SUBREAPER,
};

/* create's and run's options; returns 0, 1 (logged) or 2 (not one of them). */
static int create_option(int c, CreateArgs *a)
{
        char *end;
        unsigned long n;

        switch (c) {
        case OPT_BUNDLE:
                a->bundle = optarg;
                return 0;
        case OPT_PID_FILE:
                a->pid_file = optarg;
                return 0;
        case OPT_CONSOLE_SOCKET:
                a->console_socket = optarg;
                return 0;
        case OPT_NO_PIVOT:
                return fail("--no-pivot: not supported: cella always pivot_roots into the "
                            "container's root (a chroot can be escaped)");
        case OPT_NO_NEW_KEYRING:
                /* The sandbox makes no session keyring; keyctl is outside cella's allowlist. */
                return 0;
        case OPT_PRESERVE_FDS:
                errno = 0;
                n = strtoul(optarg, &end, 10);
                if (errno || end == optarg || *end || n > 4096)
                        return fail("--preserve-fds %s: not a number of fds (0 to 4096)", optarg);
                a->preserve_fds = (unsigned)n;
                return 0;
        }
        return 2;
}

static int cmd_create(int argc, char **argv, bool run)
{
        static const struct option opts[] = {
                {"bundle", required_argument, NULL, OPT_BUNDLE},
                {"pid-file", required_argument, NULL, OPT_PID_FILE},
                {"console-socket", required_argument, NULL, OPT_CONSOLE_SOCKET},
                {"no-pivot", no_argument, NULL, OPT_NO_PIVOT},
                {"no-new-keyring", no_argument, NULL, OPT_NO_NEW_KEYRING},
                {"preserve-fds", required_argument, NULL, OPT_PRESERVE_FDS},
                {"detach", no_argument, NULL, 'd'},
                {"keep", no_argument, NULL, OPT_KEEP},
                {"no-subreaper", no_argument, NULL, OPT_NO_SUBREAPER},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        CreateArgs a = {};
        bool detach = false, keep = false;
        pid_t pid = 0;
        siginfo_t si = {};
        int c, r;

        while ((c = getopt_long(argc, argv, run ? "+b:dh" : "+b:h", opts, NULL)) >= 0) {
                if (c == 'h') {
                        usage(stdout);
                        return 0;
                }
                if (run && c == 'd') {
                        detach = true;
                        continue;
                }
                if (run && (c == OPT_KEEP || c == OPT_NO_SUBREAPER)) {
                        keep = keep || c == OPT_KEEP;
                        continue;
                }
                r = create_option(c, &a);
                if (r == 2)
                        return bad_usage(argv[0], "unknown option");
                if (r)
                        return r;
        }
        a.id = one_id(argv[0], argc, argv);
        if (!a.id)
                return 1;
        r = do_create(&a, &pid);
        if (r || !run)
                return r;
        r = do_start(a.id);
        if (r || detach)
                return r;
        /* run without --detach: wait for the container (its init is our child) and
         * remove it, exiting with its status as runc does. */
        {
                _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
                sigset_t passed;

                sigemptyset(&passed);
                sigaddset(&passed, SIGINT);
                sigaddset(&passed, SIGTERM);
                sigaddset(&passed, SIGHUP);
                sigaddset(&passed, SIGQUIT);
                (void)sigprocmask(SIG_BLOCK, &passed, NULL);
                if (pidfd < 0)
                        r = waitid(P_PID, (id_t)pid, &si, WEXITED) < 0
                                    ? 255
                                    : (si.si_code == CLD_EXITED ? si.si_status
                                                                : 128 + si.si_status);
                else
                        r = exec_wait(pid, pidfd, &passed);
        }
        if (!keep)
                (void)do_delete(a.id, true);
        return r;
}

static int cmd_simple(int argc, char **argv)
{
        static const struct option opts[] = {
                {"force", no_argument, NULL, 'f'},
                {"all", no_argument, NULL, 'a'},
                {"format", required_argument, NULL, OPT_FORMAT},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *cmd = argv[0], *id, *format = "table";
        bool force = false, all = false;
        int c;

        while ((c = getopt_long(argc, argv, "+fah", opts, NULL)) >= 0)
                switch (c) {
                case 'f':
                        if (strcmp(cmd, "delete") != 0)
                                return bad_usage(cmd, "unknown option --force");
                        force = true;
                        break;
                case 'a':
                        if (strcmp(cmd, "kill") != 0)
                                return bad_usage(cmd, "unknown option --all");
                        all = true;
                        break;
                case OPT_FORMAT:
                        if (strcmp(cmd, "ps") != 0)
                                return bad_usage(cmd, "unknown option --format");
                        if (strcmp(optarg, "table") != 0 && strcmp(optarg, "json") != 0)
                                return bad_usage(cmd, "--format takes table or json");
                        format = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        return bad_usage(cmd, "unknown option");
                }
        if (strcmp(cmd, "kill") == 0) {
                if (optind >= argc)
                        return bad_usage(cmd, "a container id is required");
                if (argc - optind > 2)
                        return bad_usage(cmd, "too many arguments");
                return do_kill(argv[optind], argc - optind == 2 ? argv[optind + 1] : NULL, all);
        }
        id = one_id(cmd, argc, argv);
        if (!id)
                return 1;
        if (strcmp(cmd, "start") == 0)
                return do_start(id);
        if (strcmp(cmd, "state") == 0)
                return do_state(id);
        if (strcmp(cmd, "delete") == 0)
                return do_delete(id, force);
        if (strcmp(cmd, "pause") == 0)
                return do_pause(id, true);
        if (strcmp(cmd, "resume") == 0)
                return do_pause(id, false);
        if (strcmp(cmd, "ps") == 0)
                return do_ps(id, strcmp(format, "json") == 0);
        return bad_usage(cmd, "unknown command");
}

static int cmd_exec(int argc, char **argv)
{
        static const struct option opts[] = {
                {"console-socket", required_argument, NULL, OPT_CONSOLE_SOCKET},
                {"cwd", required_argument, NULL, OPT_CWD},
                {"env", required_argument, NULL, 'e'},
                {"tty", no_argument, NULL, 't'},
                {"user", required_argument, NULL, 'u'},
                {"additional-gids", required_argument, NULL, 'g'},
                {"process", required_argument, NULL, 'p'},
                {"detach", no_argument, NULL, 'd'},
                {"pid-file", required_argument, NULL, OPT_PID_FILE},
                {"process-label", required_argument, NULL, OPT_PROCESS_LABEL},
                {"apparmor", required_argument, NULL, OPT_APPARMOR},
                {"no-new-privs", no_argument, NULL, OPT_NO_NEW_PRIVS},
                {"cap", required_argument, NULL, 'c'},
                {"preserve-fds", required_argument, NULL, OPT_PRESERVE_FDS},
                {"cgroup", required_argument, NULL, OPT_CGROUP},
                {"ignore-paused", no_argument, NULL, OPT_IGNORE_PAUSED},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(strv_freep) char **env = NULL, **gids = NULL, **caps = NULL;
        ExecArgs a = {};
        int c;

        while ((c = getopt_long(argc, argv, "+e:tu:g:p:dc:h", opts, NULL)) >= 0)
                switch (c) {
                case OPT_CONSOLE_SOCKET:
                        a.console_socket = optarg;
                        break;
                case OPT_CWD:
                        a.cwd = optarg;
                        break;
                case 'e':
                        if (!strchr(optarg, '='))
                                return bad_usage(argv[0], "--env takes KEY=value");
                        if (strv_extend(&env, optarg) < 0)
                                return fail("out of memory");
                        break;
                case 't':
                        a.tty = true;
                        break;
                case 'u':
                        a.user = optarg;
                        break;
                case 'g':
                        if (strv_extend(&gids, optarg) < 0)
                                return fail("out of memory");
                        break;
                case 'p':
                        a.process = optarg;
                        break;
                case 'd':
                        a.detach = true;
                        break;
                case OPT_PID_FILE:
                        a.pid_file = optarg;
                        break;
                case OPT_PROCESS_LABEL:
                case OPT_APPARMOR:
                        oci_log(OCI_LOG_WARNING,
                                "exec: --%s ignored: cella-oci applies no LSM labels",
                                c == OPT_APPARMOR ? "apparmor" : "process-label");
                        break;
                case OPT_NO_NEW_PRIVS:
                        a.no_new_privs = true;
                        break;
                case 'c':
                        if (strv_extend(&caps, optarg) < 0)
                                return fail("out of memory");
                        break;
                case OPT_PRESERVE_FDS:
                        if (strcmp(optarg, "0") != 0)
                                return fail("exec: --preserve-fds: not supported (the command "
                                            "gets its stdio alone)");
                        break;
                case OPT_CGROUP:
                        return fail("exec: --cgroup: not supported (the command joins the "
                                    "container's cgroup)");
                case OPT_IGNORE_PAUSED:
                        a.ignore_paused = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        return bad_usage(argv[0], "unknown option");
                }
        if (optind >= argc)
                return bad_usage(argv[0], "a container id is required");
        a.id = argv[optind];
        a.args = argv + optind + 1;
        if (a.process && a.args[0])
                return bad_usage(argv[0], "give --process or a command, not both");
        a.env = env;
        a.gids = gids;
        a.caps = caps;
        return do_exec(&a);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"root", required_argument, NULL, 'r'},
                {"log", required_argument, NULL, 'l'},
                {"log-format", required_argument, NULL, 'f'},
                {"debug", no_argument, NULL, 'D'},
                {"systemd-cgroup", no_argument, NULL, 's'},
                {"rootless", required_argument, NULL, 'R'},
                {"criu", required_argument, NULL, 'C'},
                {"version", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *log_path = NULL, *cmd;
        bool json = false;
        int c, r;

        /* A closed 0, 1 or 2 (an engine may start us so) is /dev/null from here on, so
         * that no file of ours (the log) takes its number and becomes a container's
         * stdio. */
        for (int fd = 0; fd < 3; fd++)
                if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
                        int null = open("/dev/null", O_RDWR);

                        if (null < 0 || (null != fd && (dup2(null, fd) < 0 || close(null) < 0)))
                                return 1;
                }

        while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) >= 0)
                switch (c) {
                case 'r':
                        g.root = optarg;
                        break;
                case 'l':
                        log_path = optarg;
                        break;
                case 'f':
                        if (strcmp(optarg, "json") == 0)
                                json = true;
                        else if (strcmp(optarg, "text") != 0) {
                                fprintf(stderr, "cella-oci: --log-format %s: text or json\n",
                                        optarg);
                                return 1;
                        }
                        break;
                case 'D':
                        g.debug = true;
                        break;
                case 's':
                        g.systemd_cgroup = true;
                        break;
                case 'R':
                        if (strcmp(optarg, "true") == 0)
                                g.rootless = 1;
                        else if (strcmp(optarg, "false") == 0)
                                g.rootless = 0;
                        else if (strcmp(optarg, "auto") == 0)
                                g.rootless = -1;
                        else {
                                fprintf(stderr, "cella-oci: --rootless %s: true, false or auto\n",
                                        optarg);
                                return 1;
                        }
                        break;
                case 'C':
                        break; /* checkpoint/restore is not offered; the path is unused */
                case 'v':
                        printf("cella-oci version %s\nspec: %s\n", CELLA_OCI_VERSION,
                               OCI_VERSION_MAX);
                        return 0;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 1;
                }
        r = oci_log_open(log_path, json, g.debug);
        if (r < 0)
                fprintf(stderr, "cella-oci: --log %s: %s (logging to stderr)\n", log_path,
                        strerror(-r));
        if (g.root[0] != '/')
                return fail("--root %s: an absolute path is required", g.root);
        if (optind >= argc) {
                usage(stderr);
                return 1;
        }
        cmd = argv[optind];
        argc -= optind;
        argv += optind;
        optind = 0; /* getopt starts again on the command's own arguments */
        if (strcmp(cmd, "features") == 0)
                return do_features();
        if (geteuid() != 0)
                return fail("cella-oci needs root (it builds each container's jail with root's "
                            "capabilities, then runs it under an unprivileged host id)%s",
                            g.rootless == 1 ? ": --rootless true is not supported" : "");
        oci_log(OCI_LOG_DEBUG, "command %s", cmd);
        if (strcmp(cmd, "create") == 0)
                return cmd_create(argc, argv, false);
        if (strcmp(cmd, "run") == 0)
                return cmd_create(argc, argv, true);
        if (strcmp(cmd, "exec") == 0)
                return cmd_exec(argc, argv);
        if (strcmp(cmd, "start") == 0 || strcmp(cmd, "state") == 0 || strcmp(cmd, "kill") == 0 ||
            strcmp(cmd, "delete") == 0 || strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0 ||
            strcmp(cmd, "ps") == 0)
                return cmd_simple(argc, argv);
        return fail("unknown command \"%s\" (see cella-oci --help)", cmd);
}
