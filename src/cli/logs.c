/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella logs: prints an app's output log, <state>/logs/<id>.log, after its rotated
 * predecessors <id>.log.N .. <id>.log.1 (oldest first: supervisor/applog.h names
 * them as logrotate does), all of it or its last N lines, and with -f follows the
 * current file across rotations, as `tail -F` does.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/fileio.h"
#include "base/time-util.h"
#include "base/log.h"
#include "base/statedir.h"
#include "base/macro.h"
#include "base/termsafe.h"
#include "cli/cli.h"
#include "cli/daemon-client.h"
#include "policy/manifest.h"
#include "supervisor/applog.h"
#include "cli/exit-codes.h"

#define LOGS_DIR       "logs"
#define LOGS_LINES_MAX 100000000ull /* -n bound: more than any kept log holds */
#define LOGS_CHUNK     65536u
#define LOGS_POLL_MS   1000 /* -f re-checks the file this often even without inotify */

enum {
        ARG_STATE_DIR = 0x100,
        ARG_RAW_OUTPUT,
        ARG_SINCE,
};

static void logs_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella logs [OPTIONS] APP\n"
                "\n"
                "Prints the output (stdout and stderr) of the app APP as cella boot logged it,\n"
                "rotated files first.\n"
                "\n"
                "Options:\n"
                "  -n, --lines N         only the last N lines\n"
                "  -f, --follow          keep printing what the app writes (Ctrl-C to stop)\n"
                "  -t, --timestamps      each line after the time it came (RFC 3339, UTC)\n"
                "      --since T         only the lines that came from T on: an RFC 3339 time\n"
                "                        or date, or an age (10m, 2h, 1d)\n"
                "      --raw-output      to a terminal too, print the log as it is, escape\n"
                "                        sequences included (default: shown inert, as cat -v)\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 printed; 1 the app has no log; 240 bad command line;\n"
                "242 the log cannot be read.\n",
                cli_default_state_dir());
}

/* One file of the log, oldest first. */
typedef struct LogFile {
        int fd;
        uint64_t size; /* at open */
        char name[MANIFEST_ID_MAX + 16];
} LogFile;

/*
 * --timestamps and --since: the log read line by line, each line's time from its
 * file's time index (supervisor/applog.h), kept across reads of one file.
 */
typedef struct Lines {
        bool active; /* --timestamps or --since given */
        bool timestamps;
        bool has_since;
        int64_t since_us;
        bool at_start; /* the next byte starts a line */
        bool skipping; /* the line being read is before --since */
        AppLogTime *times;
        size_t n_times;
} Lines;

/* Loads name's time index into lines (a new file: its lines start afresh). */
static void lines_load(Lines *lines, int dirfd, const char *name)
{
        if (!lines->active)
                return;
        free(lines->times);
        lines->times = NULL;
        lines->n_times = 0;
        (void)applog_times_load(dirfd, name, &lines->times, &lines->n_times);
}

/*
 * Where the log goes: stdout, as it is when stdout is a pipe or a file (so the
 * bytes stay exact for programs), rendered safe when it is a terminal
 * (termsafe_stream: an app's escape sequences shown as text, not acted on),
 * unless --raw-output.
 */
typedef struct Out {
        bool sanitize;
        TermSafe safe;
} Out;

static int out_write(Out *o, const char *buf, size_t n)
{
        static char safe[TERMSAFE_STREAM_OUT(LOGS_CHUNK)];

        if (!o->sanitize)
                return loop_write(STDOUT_FILENO, buf, n);
        return loop_write(STDOUT_FILENO, safe, termsafe_stream(&o->safe, buf, n, safe));
}

/* The end of what is printed: a character cut at the end, a lone CR. */
static int out_end(Out *o)
{
        char tail[16];

        if (!o->sanitize)
                return 0;
        return loop_write(STDOUT_FILENO, tail, termsafe_stream_end(&o->safe, tail));
}

/* Writes buf (n bytes, at offset off of its file) a line at a time: a line before
 * --since is left out, and with --timestamps each starts with its time. */
static int lines_write(Out *o, Lines *lines, const char *buf, size_t n, uint64_t off)
{
        size_t i = 0;
        int r;

        while (i < n) {
                const char *nl = memchr(buf + i, '\n', n - i);
                size_t end = nl ? (size_t)(nl - buf) + 1 : n;

                if (lines->at_start) {
                        int64_t t = applog_time_at(lines->times, lines->n_times, off + i);

                        /* A line with no time (written before the index) counts as older. */
                        lines->skipping = lines->has_since && t < lines->since_us;
                        if (!lines->skipping && lines->timestamps) {
                                char when[40], pre[48];
                                int k;

                                if (t <= 0 || !audit_format_time(t, when, sizeof when))
                                        snprintf(when, sizeof when, "%-27s", "-");
                                k = snprintf(pre, sizeof pre, "%s ", when);
                                r = loop_write(STDOUT_FILENO, pre, (size_t)k);
                                if (r < 0)
                                        return r;
                        }
                }
                if (!lines->skipping) {
                        r = out_write(o, buf + i, end - i);
                        if (r < 0)
                                return r;
                }
                lines->at_start = nl != NULL;
                i = end;
        }
        return 0;
}

/* Copies fd from offset off to its end (as it is now) to stdout. Returns the
 * offset reached, or -errno. */
static int64_t copy_out(Out *o, Lines *lines, int fd, uint64_t off)
{
        char buf[LOGS_CHUNK];

        for (;;) {
                ssize_t n = RETRY_EINTR(pread(fd, buf, sizeof buf, (off_t)off));
                int r;

                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return (int64_t)off;
                r = lines->active ? lines_write(o, lines, buf, (size_t)n, off)
                                  : out_write(o, buf, (size_t)n);
                if (r < 0)
                        return r;
                off += (uint64_t)n;
        }
}

/*
 * Finds where the last `lines` (>= 1) lines start, scanning the files backwards:
 * sets *ret_file and *ret_off (the start of the first file when the log holds
 * fewer lines). A newline that is not the log's last byte separates two lines; the
 * last line needs no newline (tail's rule). Returns 0 or -errno.
 */
static int find_tail(const LogFile *files, size_t n, uint64_t lines, size_t *ret_file,
                     uint64_t *ret_off)
{
        char buf[LOGS_CHUNK];
        bool last_byte = true;
        uint64_t seen = 0;

        for (size_t i = n; i-- > 0;) {
                uint64_t end = files[i].size;

                while (end > 0) {
                        size_t len = end > sizeof buf ? sizeof buf : (size_t)end;
                        uint64_t start = end - len;
                        ssize_t k = RETRY_EINTR(pread(files[i].fd, buf, len, (off_t)start));

                        if (k < 0)
                                return negative_errno();
                        if ((size_t)k != len)
                                return -EIO; /* shrank under us */
                        for (size_t j = len; j-- > 0;) {
                                if (buf[j] == '\n' && !last_byte && ++seen == lines) {
                                        *ret_file = i;
                                        *ret_off = start + j + 1;
                                        return 0;
                                }
                                last_byte = false;
                        }
                        end = start;
                }
        }
        *ret_file = 0;
        *ret_off = 0;
        return 0;
}

/* Follows dir/name from *fd at offset pos until killed or stdout fails. */
static int follow(Out *o, Lines *lines, int dirfd, const char *name, int fd, uint64_t pos)
{
        _cleanup_close_ int ino = -EBADF, cur = fd;
        struct stat st, now;

        ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ino >= 0) {
                char self[64];

                snprintf(self, sizeof self, "/proc/self/fd/%d", dirfd);
                if (inotify_add_watch(ino, self,
                                      IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM |
                                              IN_DELETE | IN_CLOSE_WRITE) < 0)
                        ino = safe_close(ino);
        }
        for (;;) {
                struct pollfd pfd = {.fd = ino, .events = POLLIN};
                char drain[4096];
                int64_t r;

                if (cur >= 0) {
                        if (fstat(cur, &st) < 0)
                                return negative_errno();
                        if ((uint64_t)st.st_size < pos)
                                pos = 0; /* truncated in place (applog with keep 0) */
                        /* The index has grown with the file. */
                        if ((uint64_t)st.st_size > pos)
                                lines_load(lines, dirfd, name);
                        r = copy_out(o, lines, cur, pos);
                        if (r < 0)
                                return (int)r;
                        pos = (uint64_t)r;
                        /* Rotated: the name now holds a new file. What the old one got
                         * before the rename was just printed; go on with the new one. */
                        if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
                            (now.st_ino != st.st_ino || now.st_dev != st.st_dev))
                                cur = safe_close(cur);
                }
                if (cur < 0) {
                        cur = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
                        if (cur >= 0) {
                                pos = 0;
                                lines->at_start = true;
                                continue;
                        }
                        if (errno != ENOENT)
                                return negative_errno();
                }
                if (poll(&pfd, 1, LOGS_POLL_MS) < 0 && errno != EINTR)
                        return negative_errno();
                while (ino >= 0 && read(ino, drain, sizeof drain) > 0)
                        ;
        }
}

/*
 * -f for a log whose folder is not there yet (no app of state_dir has run under
 * cella boot): waits for <state_dir>/logs to appear, as `tail -F` waits for its
 * file, watching state_dir with inotify when it exists and checking again every
 * LOGS_POLL_MS anyway (state_dir itself may not exist yet). Returns 0 and
 * *ret_dirfd, or -errno (not ENOENT) when the folder cannot be opened.
 */
static int wait_logs_dir(const char *state_dir, int *ret_dirfd)
{
        _cleanup_close_ int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        _cleanup_free_ char *path = NULL;
        int wd = -1;

        if (asprintf(&path, "%s/" LOGS_DIR, state_dir) < 0)
                return -ENOMEM;
        for (;;) {
                struct pollfd pfd = {.fd = ino, .events = POLLIN};
                char drain[4096];
                int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                if (fd >= 0) {
                        *ret_dirfd = fd;
                        return 0;
                }
                if (errno != ENOENT)
                        return negative_errno();
                if (ino >= 0 && wd < 0)
                        wd = inotify_add_watch(ino, state_dir,
                                               IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
                if (poll(&pfd, 1, LOGS_POLL_MS) < 0 && errno != EINTR)
                        return negative_errno();
                while (ino >= 0 && read(ino, drain, sizeof drain) > 0)
                        ;
        }
}

static int on_log_data(json_t *params, bool continues, void *ud)
{
        Out *o = ud;
        const char *data = json_string_value(json_object_get(params, "data"));
        int r;

        if (!data)
                return 0;
        r = out_write(o, data, json_string_length(json_object_get(params, "data")));
        return r < 0 ? r : 0;
}

/* The log through cellad's org.cella.Logs: the last lines (0: all), since since (an
 * argument of --since, or NULL), then with follow what comes. Returns the exit
 * code. */
static int logs_via_daemon(Out *o, const char *state_dir, const char *app, uint64_t lines,
                           const char *since, bool follow)
{
        json_t *params = json_pack("{s:s}", "app", app);
        int code;

        if (!params)
                return CELLA_EXIT_INTERNAL;
        if (lines > 0)
                json_object_set_new(params, "lines", json_integer((json_int_t)lines));
        if (since)
                json_object_set_new(params, "since", json_string(since));
        code = cli_daemon_call("logs", state_dir, "org.cella.Logs", params, follow, false,
                               on_log_data, o);
        (void)out_end(o);
        return code;
}

int cli_logs(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"lines", required_argument, NULL, 'n'},
                {"follow", no_argument, NULL, 'f'},
                {"raw-output", no_argument, NULL, ARG_RAW_OUTPUT},
                {"timestamps", no_argument, NULL, 't'},
                {"since", required_argument, NULL, ARG_SINCE},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        Lines ln = {.at_start = true};
        const char *since_arg = NULL;
        const char *state_dir = cli_default_state_dir(), *app;
        LogFile files[APPLOG_KEEP_MAX + 1];
        _cleanup_close_ int sfd = -EBADF, dirfd = -EBADF;
        char name[MANIFEST_ID_MAX + 16], cur_name[MANIFEST_ID_MAX + 16];
        uint64_t lines = 0, off = 0;
        unsigned long long n_lines;
        bool tail = false, do_follow = false, raw = false, waiting = false;
        Out out = {};
        size_t n = 0, first = 0;
        int c, r, code = 0, cur_fd = -EBADF;
        int64_t w;

        while ((c = getopt_long(argc, argv, "hn:ft", options, NULL)) >= 0) {
                switch (c) {
                case ARG_STATE_DIR:
                        if ((code = cli_state_dir_arg(optarg, &state_dir)) != 0)
                                return code;
                        break;
                case 'n':
                        if (cli_parse_uint(optarg, LOGS_LINES_MAX, &n_lines) < 0) {
                                log_error("-n: expected a number of lines, 0 to %llu",
                                          LOGS_LINES_MAX);
                                return CELLA_EXIT_USAGE;
                        }
                        lines = n_lines;
                        tail = true;
                        break;
                case 'f':
                        do_follow = true;
                        break;
                case ARG_RAW_OUTPUT:
                        raw = true;
                        break;
                case 't':
                        ln.timestamps = ln.active = true;
                        break;
                case ARG_SINCE:
                        if (audit_parse_since(optarg, now_realtime_us(), &ln.since_us) < 0) {
                                log_error("--since: expected an RFC 3339 time or date, or an age "
                                          "such as 10m, 2h, 1d, not '%s'",
                                          optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        ln.has_since = ln.active = true;
                        since_arg = optarg;
                        break;
                case 'h':
                        logs_usage(stdout);
                        return 0;
                default:
                        logs_usage(stderr);
                        return CELLA_EXIT_USAGE;
                }
        }
        if (argc - optind != 1) {
                log_error("logs: expected APP; see 'cella logs --help'");
                return CELLA_EXIT_USAGE;
        }
        app = argv[optind];
        /* The id becomes a file name: only a valid one gets that far. */
        if ((code = cli_app_id_arg(app)) != 0)
                return code;
        /* A user who may not read the log files (root's) reads them through cellad,
         * when one runs: org.cella.Logs is a read method (docs/api.md). */
        if (geteuid() != 0 && cli_daemon_running(state_dir)) {
                if (ln.timestamps) {
                        log_error("logs: --timestamps reads the log files themselves, which "
                                  "are root's; without it cellad sends the log");
                        return CELLA_EXIT_USAGE;
                }
                out.sanitize = !raw && isatty(STDOUT_FILENO);
                return logs_via_daemon(&out, state_dir, app, tail ? lines : 0, since_arg,
                                       do_follow);
        }

        /* Only logs that nobody but us could have written (base/statedir.h). */
        sfd = state_dir_open(state_dir, false);
        if (sfd < 0 && sfd != -ENOENT)
                return CELLA_EXIT_STATE; /* said */
        if (sfd == -ENOENT)
                errno = ENOENT;
        if (sfd >= 0)
                dirfd = openat(sfd, LOGS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if ((sfd < 0 || dirfd < 0) && errno == ENOENT && do_follow) {
                waiting = true;
                log_info("no log of %s yet in %s/" LOGS_DIR "; waiting for it", app, state_dir);
                r = wait_logs_dir(state_dir, &dirfd);
                if (r < 0) {
                        log_error_errno(r, "cannot open %s/" LOGS_DIR ": %m", state_dir);
                        return CELLA_EXIT_STATE;
                }
        }
        if (dirfd < 0) {
                r = negative_errno();
                if (r == -ENOENT) {
                        log_error("%s has no log in %s/" LOGS_DIR " (logs are kept for apps "
                                  "started by cella boot)",
                                  app, state_dir);
                        return 1;
                }
                log_error_errno(r, "cannot open %s/" LOGS_DIR ": %m", state_dir);
                return CELLA_EXIT_STATE;
        }
        {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/" LOGS_DIR, state_dir) < 0) {
                        log_error("out of memory");
                        return CELLA_EXIT_INTERNAL;
                }
                if (owned_check_fd(dirfd, path) < 0)
                        return CELLA_EXIT_STATE;
        }

        /* Oldest first: <id>.log.KEEP_MAX .. <id>.log.1, then <id>.log. */
        snprintf(cur_name, sizeof cur_name, "%s.log", app);
        for (unsigned k = APPLOG_KEEP_MAX + 1; k-- > 0;) {
                struct stat st;
                int fd;

                if (k > 0)
                        snprintf(name, sizeof name, "%s.log.%u", app, k);
                else
                        snprintf(name, sizeof name, "%s", cur_name);
                fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        if (errno == ENOENT)
                                continue;
                        r = negative_errno();
                        log_error_errno(r, "cannot open %s/" LOGS_DIR "/%s: %m", state_dir, name);
                        code = CELLA_EXIT_STATE;
                        goto out;
                }
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        close(fd);
                        log_error("%s/" LOGS_DIR "/%s is not a regular file", state_dir, name);
                        code = CELLA_EXIT_STATE;
                        goto out;
                }
                files[n] = (LogFile){.fd = fd, .size = (uint64_t)st.st_size};
                snprintf(files[n].name, sizeof files[n].name, "%s", name);
                n++;
                if (k == 0)
                        cur_fd = fd;
        }
        if (n == 0 && !do_follow) {
                log_error("%s has no log in %s/" LOGS_DIR " (logs are kept for apps started by "
                          "cella boot)",
                          app, state_dir);
                return 1;
        }
        if (n == 0 && !waiting)
                log_info("no log of %s yet in %s/" LOGS_DIR "; waiting for it", app, state_dir);

        out.sanitize = !raw && isatty(STDOUT_FILENO);
        if (tail && n > 0) {
                if (lines == 0) {
                        first = n - 1;
                        off = files[n - 1].size;
                } else if ((r = find_tail(files, n, lines, &first, &off)) < 0) {
                        log_error_errno(r, "cannot read the log of %s: %m", app);
                        code = CELLA_EXIT_STATE;
                        goto out;
                }
        }
        for (size_t i = first; i < n; i++) {
                lines_load(&ln, dirfd, files[i].name);
                ln.at_start = true;
                w = copy_out(&out, &ln, files[i].fd, i == first ? off : 0);
                if (w < 0) {
                        if (w != -EPIPE)
                                log_error_errno((int)w, "cannot print the log of %s: %m", app);
                        code = w == -EPIPE ? 0 : CELLA_EXIT_STATE;
                        goto out;
                }
                if (files[i].fd == cur_fd)
                        off = (uint64_t)w;
        }
        if (do_follow) {
                int fd = -EBADF;

                /* Hand the current file to follow(), which owns it from here. */
                for (size_t i = 0; i < n; i++)
                        if (files[i].fd == cur_fd) {
                                fd = cur_fd;
                                files[i].fd = -EBADF;
                        }
                if (fd < 0)
                        off = 0;
                r = follow(&out, &ln, dirfd, cur_name, fd, off);
                if (r < 0 && r != -EPIPE) {
                        log_error_errno(r, "cannot follow the log of %s: %m", app);
                        code = CELLA_EXIT_STATE;
                }
        } else
                (void)out_end(&out);
out:
        for (size_t i = 0; i < n; i++)
                safe_close(files[i].fd);
        free(ln.times);
        return code;
}
