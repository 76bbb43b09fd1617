/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cellad: the long-running kernel (docs/daemon.md); its options, then daemon_run(). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/statedir.h"
#include "base/strv.h"
#include "config.h"
#include "daemon/daemon.h"
#include "daemon/pool.h"
#include "supervisor/state.h"

enum {
        ARG_STATE_DIR = 0x100,
        ARG_SOCKET,
        ARG_READY_FD,
        ARG_LOCK_FD,
        ARG_LISTEN_FD,
        ARG_CGROUP_MODE,
        ARG_UID_RANGE,
        ARG_NO_AUTOSTART,
        ARG_NO_CPU_WEIGHTS,
        ARG_NO_MEMORY_MANAGER,
        ARG_WARM,
        ARG_READ_USERS,
        ARG_READ_GROUPS,
        ARG_MAX_RUNS,
        ARG_MAX_RUNS_PER_USER,
        ARG_VERSION,
};

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: cellad [OPTIONS]\n"
                "\n"
                "The cella kernel as a daemon: it owns the apps installed in one state\n"
                "directory, starts the ones marked to start, and serves the control API on\n"
                "<state-dir>/cellad.sock until SIGTERM (docs/daemon.md).\n"
                "\n"
                "  -s, --state-dir DIR      state directory (default %s;\n"
                "                           $CELLA_STATE_DIR names another)\n"
                "      --socket PATH        the control socket (default <state-dir>/cellad.sock;\n"
                "                           not used when systemd passes one)\n"
                "      --ready-fd N         write \"READY\\n\" to file descriptor N once the\n"
                "                           daemon answers on its socket, then close it\n"
                "      --no-autostart       start no installed app at start\n"
                "      --no-cpu-weights     give every app the default CPU weight, whatever\n"
                "                           its state (docs/memory.md \"CPU\")\n"
                "      --no-memory-manager  arm no memory pressure trigger: no trim, reclaim,\n"
                "                           freeze or kill by the manager (docs/memory.md)\n"
                "      --warm N             keep N sandboxes prepared for fast starts\n"
                "                           (default %u, at most %u; 0: none)\n"
                "      --read-users LIST    open the read-only methods (ps, logs, ...) to these\n"
                "                           users (names or uids, comma-separated)\n"
                "      --read-groups LIST   ... and to the members of these groups\n"
                "      --max-runs N         org.cella.Run's runs at once (default %u)\n"
                "      --max-runs-per-user N  ... of one caller who is not root (default %u)\n"
                "      --uid-range BASE:N   host ids for new apps, %u per app (default %u:%u)\n"
                "      --cgroup-mode MODE   auto, v1, v2 or hybrid (default auto)\n"
                "  -v, --verbose            more messages\n"
                "  -h, --help               this text\n"
                "      --version            the version\n"
                "\n"
                "Signals: SIGTERM or SIGINT stop every app (services last) and exit 0; SIGHUP\n"
                "re-executes cellad in place without stopping the apps.\n"
                "Exit codes: 0 stopped, 1 failed, 2 usage, 3 another cellad holds the state\n"
                "directory.\n",
                state_dir_default(), DAEMON_WARM_DEFAULT, DAEMON_WARM_MAX, DAEMON_RUNS_DEFAULT,
                DAEMON_RUNS_PER_USER_DEFAULT, STATE_IDS_PER_APP, STATE_UID_BASE_DEFAULT,
                STATE_UID_COUNT_DEFAULT);
}

/* A non-negative int from s (a whole decimal). Returns 0 and *ret, or -EINVAL. */
static int parse_fd(const char *s, int *ret)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < 0 || v > 1 << 20)
                return -EINVAL;
        *ret = (int)v;
        return 0;
}

/* --uid-range BASE:COUNT, as cella run's. Returns 0 or -EINVAL (printed). */
static int parse_uid_range(const char *arg, DaemonOptions *o)
{
        unsigned long long v, n;
        char *end;

        errno = 0;
        v = strtoull(arg, &end, 10);
        if (errno || end == arg || *end != ':')
                goto bad;
        arg = end + 1;
        n = strtoull(arg, &end, 10);
        if (errno || end == arg || *end || v == 0 || n == 0 || n % STATE_IDS_PER_APP != 0 ||
            v + n > 0xFFFFFFFEull)
                goto bad;
        o->uid_base = (uid_t)v;
        o->uid_count = (uint32_t)n;
        return 0;
bad:
        log_error("--uid-range: expected BASE:COUNT with BASE > 0, COUNT a multiple of %u "
                  "(host ids per app) and BASE+COUNT at most 4294967294",
                  STATE_IDS_PER_APP);
        return -EINVAL;
}

/* Appends the entries of "a,b,c" to *l. Returns 0, -EINVAL for an empty entry, or
 * -ENOMEM. */
static int split_list(const char *arg, char ***l)
{
        const char *p = arg;

        for (;;) {
                size_t n = strcspn(p, ",");
                char *e;
                int r;

                if (n == 0)
                        return -EINVAL;
                e = strndup(p, n);
                if (!e)
                        return -ENOMEM;
                r = strv_extend(l, e);
                free(e);
                if (r < 0)
                        return r;
                if (!p[n])
                        return 0;
                p += n + 1;
        }
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, 's'},
                {"socket", required_argument, NULL, ARG_SOCKET},
                {"ready-fd", required_argument, NULL, ARG_READY_FD},
                /* Internal: the lock and socket a re-exec hands over (docs/daemon.md,
                 * "Signals"). */
                {"lock-fd", required_argument, NULL, ARG_LOCK_FD},
                {"listen-fd", required_argument, NULL, ARG_LISTEN_FD},
                {"cgroup-mode", required_argument, NULL, ARG_CGROUP_MODE},
                {"uid-range", required_argument, NULL, ARG_UID_RANGE},
                {"no-autostart", no_argument, NULL, ARG_NO_AUTOSTART},
                {"no-cpu-weights", no_argument, NULL, ARG_NO_CPU_WEIGHTS},
                {"no-memory-manager", no_argument, NULL, ARG_NO_MEMORY_MANAGER},
                {"warm", required_argument, NULL, ARG_WARM},
                {"read-users", required_argument, NULL, ARG_READ_USERS},
                {"read-groups", required_argument, NULL, ARG_READ_GROUPS},
                {"max-runs", required_argument, NULL, ARG_MAX_RUNS},
                {"max-runs-per-user", required_argument, NULL, ARG_MAX_RUNS_PER_USER},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {},
        };
        DaemonOptions o = {
                .ready_fd = -1,
                .lock_fd = -1,
                .listen_fd = -1,
                .uid_base = STATE_UID_BASE_DEFAULT,
                .uid_count = STATE_UID_COUNT_DEFAULT,
                .argv = argv,
        };
        _cleanup_strv_free_ char **read_users = NULL, **read_groups = NULL;
        int c;

        o.state_dir = state_dir_default();
        o.warm = DAEMON_WARM_DEFAULT;
        while ((c = getopt_long(argc, argv, "s:vh", options, NULL)) >= 0) {
                switch (c) {
                case 's':
                        if (!optarg[0]) {
                                log_error("--state-dir: expected a directory");
                                return DAEMON_EXIT_USAGE;
                        }
                        o.state_dir = optarg;
                        break;
                case ARG_SOCKET:
                        if (optarg[0] != '/') {
                                log_error("--socket: expected an absolute path, got '%s'", optarg);
                                return DAEMON_EXIT_USAGE;
                        }
                        o.socket_path = optarg;
                        break;
                case ARG_READY_FD:
                case ARG_LOCK_FD:
                case ARG_LISTEN_FD: {
                        int fd;

                        if (parse_fd(optarg, &fd) < 0 || fd <= STDERR_FILENO ||
                            fcntl(fd, F_GETFD) < 0) {
                                log_error("--%s: expected an open file descriptor above 2, "
                                          "got '%s'",
                                          c == ARG_READY_FD  ? "ready-fd"
                                          : c == ARG_LOCK_FD ? "lock-fd"
                                                             : "listen-fd",
                                          optarg);
                                return DAEMON_EXIT_USAGE;
                        }
                        /* Ours alone from here: not passed on to the apps. */
                        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
                        if (c == ARG_READY_FD)
                                o.ready_fd = fd;
                        else if (c == ARG_LOCK_FD)
                                o.lock_fd = fd;
                        else
                                o.listen_fd = fd;
                        break;
                }
                case ARG_CGROUP_MODE:
                        if (strcmp(optarg, "auto") == 0)
                                o.cgroup_mode = CGROUP_MODE_AUTO;
                        else if (strcmp(optarg, "v1") == 0)
                                o.cgroup_mode = CGROUP_MODE_V1;
                        else if (strcmp(optarg, "v2") == 0)
                                o.cgroup_mode = CGROUP_MODE_V2;
                        else if (strcmp(optarg, "hybrid") == 0)
                                o.cgroup_mode = CGROUP_MODE_HYBRID;
                        else {
                                log_error("--cgroup-mode: expected auto, v1, v2 or hybrid, got "
                                          "'%s'",
                                          optarg);
                                return DAEMON_EXIT_USAGE;
                        }
                        break;
                case ARG_UID_RANGE:
                        if (parse_uid_range(optarg, &o) < 0)
                                return DAEMON_EXIT_USAGE;
                        break;
                case ARG_NO_AUTOSTART:
                        o.no_autostart = true;
                        break;
                case ARG_NO_CPU_WEIGHTS:
                        o.no_cpu_weights = true;
                        break;
                case ARG_NO_MEMORY_MANAGER:
                        o.no_memory_manager = true;
                        break;
                case ARG_WARM: {
                        char *end;
                        unsigned long v;

                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (!optarg[0] || *end || errno || optarg[0] == '-' ||
                            v > DAEMON_WARM_MAX) {
                                log_error("--warm: expected a number from 0 to %u, not '%s'",
                                          DAEMON_WARM_MAX, optarg);
                                return DAEMON_EXIT_USAGE;
                        }
                        o.warm = (unsigned)v;
                        break;
                }
                case ARG_MAX_RUNS:
                case ARG_MAX_RUNS_PER_USER: {
                        char *end;
                        unsigned long v;

                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (!optarg[0] || *end || errno || optarg[0] == '-' || v < 1 ||
                            v > DAEMON_RUNS_MAX) {
                                log_error("--%s: expected a number from 1 to %u, not '%s'",
                                          c == ARG_MAX_RUNS ? "max-runs" : "max-runs-per-user",
                                          DAEMON_RUNS_MAX, optarg);
                                return DAEMON_EXIT_USAGE;
                        }
                        if (c == ARG_MAX_RUNS)
                                o.max_runs = (unsigned)v;
                        else
                                o.max_runs_per_user = (unsigned)v;
                        break;
                }
                case ARG_READ_USERS:
                case ARG_READ_GROUPS:
                        if (split_list(optarg, c == ARG_READ_USERS ? &read_users : &read_groups) <
                            0) {
                                log_error("--%s: expected a comma-separated list of names or "
                                          "ids, got '%s'",
                                          c == ARG_READ_USERS ? "read-users" : "read-groups",
                                          optarg);
                                return DAEMON_EXIT_USAGE;
                        }
                        break;
                case 'v':
                        log_verbose++;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case ARG_VERSION:
                        printf("cellad %s\n", CELLA_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return DAEMON_EXIT_USAGE;
                }
        }
        if (optind < argc) {
                log_error("unexpected argument '%s' (cellad takes options only; see --help)",
                          argv[optind]);
                return DAEMON_EXIT_USAGE;
        }
        o.read_users = read_users;
        o.read_groups = read_groups;
        if (geteuid() != 0) {
                log_error("cellad needs root: it gives each app its own host uid and cgroup "
                          "(rootless mode is not supported yet)");
                return DAEMON_EXIT_FAILURE;
        }
        return daemon_run(&o);
}
