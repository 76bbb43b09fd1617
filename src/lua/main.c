/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella-lua ENTRY.lua [ARGS...]: runs one Lua app (docs/lua-api.md "Runtime").
 * cella-lua --spec FILE | --spec-fd N: runs a packed host of many apps
 * (docs/lua-api.md "The host spec"), which takes more while it runs through its
 * control channel (hostctl.h, "Joining a running host").
 *
 * For one app, the limits come from the environment the supervisor sets
 * (src/supervisor/launch.c; a manifest cannot set CELLA_* variables):
 *   CELLA_LUA_MEMORY        memory cap in bytes (default 64 MiB)
 *   CELLA_LUA_CPU_MS        CPU budget of one callback in ms (default 5000)
 *   CELLA_LUA_CPU_TOTAL_MS  CPU budget of the app's life in ms (default none)
 *   CELLA_LUA_STATS_FD      the stats file (src/lua/stats.h), optional
 *   CELLA_FD, CELLA_APP_ID  the broker channel (default 3 when it is a socket), the id
 * The main chunk runs with ARGS as `...`; then, while the app has something to
 * wait for, the event loop dispatches its callbacks; then cella-lua exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <lauxlib.h>

#include "base/macro.h"
#include "lua/host.h"
#include "lua/hostctl.h"

/* Largest entry file, bytes: source code, not data. */
#define ENTRY_MAX (16u * 1024 * 1024)
/* Largest CPU budget accepted from the environment: one day, in ms. */
#define BUDGET_MS_MAX CLUA_SPEC_BUDGET_MS

static int parse_env_u64(const char *name, uint64_t max, uint64_t *ret)
{
        const char *v = getenv(name);
        char *end;
        unsigned long long n;

        if (!v || !*v)
                return 0;
        errno = 0;
        n = strtoull(v, &end, 10);
        if (errno || *end || v[0] == '-' || n == 0 || n > max) {
                fprintf(stderr, "cella-lua: %s=%s: expected an integer from 1 to %" PRIu64 "\n",
                        name, v, max);
                return -EINVAL;
        }
        *ret = n;
        return 1;
}

/* Reads a regular file of at most max bytes from fd (closed). */
static int read_fd(int fd, size_t max, char **ret, size_t *ret_len)
{
        struct stat st;
        char *buf;
        size_t got = 0;

        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
                int e = errno;

                close(fd);
                return S_ISREG(st.st_mode) ? ((uint64_t)st.st_size > max ? -EFBIG : -e) : -EISDIR;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while (got < (size_t)st.st_size) {
                ssize_t n = RETRY_EINTR(read(fd, buf + got, (size_t)st.st_size - got));

                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        *ret = buf;
        *ret_len = got;
        return 0;
}

static int read_entry(const char *path, char **ret, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        return read_fd(fd, ENTRY_MAX, ret, ret_len);
}

/* Loads ENTRY into app and queues it with args as its main chunk. Reports a
 * failure on the app's stderr; returns 0 or the cella-lua exit code. */
static int start_app(CLuaApp *app, const char *entry, int nargs, char **args)
{
        char *src = NULL, *msg = NULL, *name = NULL;
        size_t len = 0;
        CLuaFault f;
        int r;

        r = read_entry(entry, &src, &len);
        if (r < 0) {
                clua_app_message(app, "%s: %s", entry, strerror(-r));
                return CLUA_EXIT_USAGE;
        }
        /* require finds the app's modules beside its entry. */
        r = clua_env_set_root(app, entry);
        if (r < 0) {
                free(src);
                clua_app_message(app, "%s: its folder: %s", entry, strerror(-r));
                return CLUA_EXIT_USAGE;
        }
        if (asprintf(&name, "@%s", entry) < 0) {
                free(src);
                return CLUA_EXIT_INTERNAL;
        }
        f = clua_load(app, src, len, name, &msg);
        free(name);
        free(src);
        if (f != CLUA_OK) {
                clua_app_message(app, "%s", msg ?: "out of memory");
                free(msg);
                return f == CLUA_MEMORY ? CLUA_EXIT_MEMORY : CLUA_EXIT_ERROR;
        }
        if (clua_host_start(app, nargs, args) < 0)
                return CLUA_EXIT_MEMORY;
        return 0;
}

static int channel_fd_from_env(void)
{
        const char *v = getenv("CELLA_FD");
        int fd = 3, type;
        socklen_t l = sizeof(type);

        if (v && *v) {
                char *end;
                long n = strtol(v, &end, 10);

                if (*end || n < 0 || n > 65535)
                        return -1;
                fd = (int)n;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type != SOCK_SEQPACKET)
                return -1;
        return fd;
}

static int run_single(int argc, char **argv)
{
        CLuaHostOptions ho = {.policy = CLUA_SCHED_FAIR, .stats_fd = -1, .n_apps = 1};
        CLuaAppSpec spec = {.log_fd = -1, .id = getenv("CELLA_APP_ID")};
        CLuaHost *h = NULL;
        CLuaApp *app;
        uint64_t v;
        int r;

        if (argc - 2 > 200) {
                fprintf(stderr, "cella-lua: too many arguments (at most 200)\n");
                return CLUA_EXIT_USAGE;
        }
        r = parse_env_u64("CELLA_LUA_MEMORY", SIZE_MAX / 2, &v);
        if (r < 0)
                return CLUA_EXIT_USAGE;
        if (r > 0)
                spec.opt.memory_cap = (size_t)v;
        r = parse_env_u64("CELLA_LUA_CPU_MS", BUDGET_MS_MAX, &v);
        if (r < 0)
                return CLUA_EXIT_USAGE;
        if (r > 0)
                spec.opt.callback_ns = v * 1000000u;
        r = parse_env_u64("CELLA_LUA_CPU_TOTAL_MS", BUDGET_MS_MAX, &v);
        if (r < 0)
                return CLUA_EXIT_USAGE;
        if (r > 0)
                spec.opt.total_ns = v * 1000000u;
        r = parse_env_u64("CELLA_LUA_STATS_FD", 65535, &v);
        if (r < 0)
                return CLUA_EXIT_USAGE;
        if (r > 0)
                ho.stats_fd = (int)v;
        spec.channel_fd = channel_fd_from_env();

        r = clua_host_new(&ho, &h);
        if (r < 0) {
                fprintf(stderr, "cella-lua: cannot create the host: %s\n", strerror(-r));
                return CLUA_EXIT_INTERNAL;
        }
        r = clua_host_add(h, &spec, &app);
        if (r < 0) {
                fprintf(stderr, "cella-lua: cannot create the Lua state: %s\n", strerror(-r));
                clua_host_free(h);
                return r == -ENOMEM ? CLUA_EXIT_MEMORY : CLUA_EXIT_INTERNAL;
        }
        r = start_app(app, argv[1], argc - 2, argv + 2);
        if (r == 0)
                r = clua_host_run(h);
        if (r < 0) {
                fprintf(stderr, "cella-lua: event loop: %s\n", strerror(-r));
                r = CLUA_EXIT_INTERNAL;
        }
        fflush(stdout);
        clua_host_free(h);
        return r;
}

/* ---- packed: the host spec ---------------------------------------------------- */

/* Largest spec, bytes: 65536 apps of about 1 KiB. */
#define SPEC_MAX (64u * 1024 * 1024)

static int spec_fail(const char *where, const char *what)
{
        fprintf(stderr, "cella-lua: spec: %s: %s\n", where, what);
        return CLUA_EXIT_USAGE;
}

static int spec_int(json_t *o, const char *key, json_int_t lo, json_int_t hi, json_int_t def,
                    json_int_t *ret, const char *where)
{
        json_t *v = json_object_get(o, key);
        char buf[320];

        if (!v) {
                *ret = def;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
                snprintf(buf, sizeof(buf), "\"%s\": expected an integer from %lld to %lld", key,
                         (long long)lo, (long long)hi);
                return spec_fail(where, buf);
        }
        *ret = json_integer_value(v);
        return 0;
}

/*
 * Adds app sa with its channel and log fds (owned from here) into slot index as
 * run (0: a spec's app; a JOIN's run) with clua_host_join() and starts it. An app
 * whose entry cannot start fails alone.
 * Returns 0, or a negative errno when it could not even be made (said on stderr).
 */
static int add_app(CLuaHost *h, uint32_t index, uint32_t run, const CLuaSpecApp *sa, int channel_fd,
                   int log_fd)
{
        CLuaAppSpec spec = {
                .id = sa->id,
                .data = sa->data,
                .channel_fd = channel_fd,
                .log_fd = log_fd,
                .priority = sa->priority,
                .opt = {.memory_cap = (size_t)sa->memory_cap,
                        .callback_ns = sa->callback_ns,
                        .total_ns = sa->total_ns},
        };
        CLuaApp *app;
        int r;

        r = clua_host_join(h, index, run, &spec, &app);
        if (r < 0) {
                fprintf(stderr, "cella-lua: %s: cannot create its state: %s\n", sa->id,
                        strerror(-r));
                return r;
        }
        r = start_app(app, sa->entry, (int)sa->n_args, (char **)sa->args);
        if (r)
                clua_host_app_failed(app, r);
        return 0;
}

/*
 * The host control channel (hostctl.h) is readable: takes every message queued.
 * A bad message is said on the host's stderr and dropped with its fds; the
 * channel stays. Returns 0, or -EPIPE at its EOF (or a broken channel).
 */
static int on_control(CLuaHost *h, void *userdata)
{
        static char buf[CLUA_CTL_MSG_MAX];

        (void)userdata;
        for (;;) {
                int fds[CLUA_CTL_FDS_MAX];
                unsigned n_fds = 0;
                char err[256];
                CLuaCtlMsg m;
                size_t len = 0;
                int r;

                r = clua_ctl_recv(h->opt.control_fd, buf, sizeof buf, &len, fds, &n_fds);
                if (r == -EAGAIN)
                        return 0;
                if (r == -EBADMSG) {
                        fprintf(stderr, "cella-lua: control: a message too long or with too "
                                        "many fds: dropped\n");
                        continue;
                }
                if (r <= 0)
                        return -EPIPE;
                r = clua_ctl_parse(buf, len, n_fds, h->cap_apps, &m, err, sizeof err);
                if (r < 0) {
                        fprintf(stderr, "cella-lua: control: %s: dropped\n", err);
                        for (unsigned i = 0; i < n_fds; i++)
                                close(fds[i]);
                        continue;
                }
                if (m.type == CLUA_CTL_STOP)
                        (void)clua_host_stop_app(h, m.index, m.run);
                else if (m.type == CLUA_CTL_PRIORITY)
                        (void)clua_host_set_priority(h, m.index, m.run, m.cpu_class, m.priority);
                else
                        (void)add_app(h, m.index, m.run, &m.app, fds[0], n_fds > 1 ? fds[1] : -1);
                clua_ctl_msg_done(&m);
        }
}

static int run_spec(const char *path, int fd)
{
        CLuaHostOptions ho = {.stats_fd = -1};
        CLuaHost *h = NULL;
        json_error_t jerr;
        json_t *root = NULL, *apps, *v;
        char *text = NULL;
        size_t len = 0, n;
        json_int_t x;
        int r;

        if (path)
                fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (r = read_fd(fd, SPEC_MAX, &text, &len)) < 0) {
                fprintf(stderr, "cella-lua: spec %s: %s\n", path ?: "fd",
                        strerror(fd < 0 ? errno : -r));
                return CLUA_EXIT_USAGE;
        }
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        free(text);
        if (!root) {
                char where[64];

                snprintf(where, sizeof(where), "line %d column %d", jerr.line, jerr.column);
                return spec_fail(where, jerr.text);
        }
        r = CLUA_EXIT_USAGE;
        if (!json_is_object(root)) {
                r = spec_fail("top level", "expected an object");
                goto out;
        }
        {
                const char *key;

                json_object_foreach(root, key,
                                    v) if (strcmp(key, "scheduler") && strcmp(key, "slice_ms") &&
                                           strcmp(key, "stats_fd") && strcmp(key, "apps") &&
                                           strcmp(key, "control_fd") && strcmp(key, "slots"))
                {
                        char buf[160];

                        snprintf(buf, sizeof(buf), "unknown key \"%.64s\"", key);
                        r = spec_fail("top level", buf);
                        goto out;
                }
        }
        v = json_object_get(root, "scheduler");
        if (!v || (json_is_string(v) && strcmp(json_string_value(v), "fair") == 0))
                ho.policy = CLUA_SCHED_FAIR;
        else if (json_is_string(v) && strcmp(json_string_value(v), "priority") == 0)
                ho.policy = CLUA_SCHED_PRIORITY;
        else if (json_is_string(v) && strcmp(json_string_value(v), "round-robin") == 0)
                ho.policy = CLUA_SCHED_ROUND_ROBIN;
        else {
                r = spec_fail("\"scheduler\"",
                              "expected \"fair\", \"priority\" or \"round-robin\"");
                goto out;
        }
        if (spec_int(root, "slice_ms", 1, 1000, 10, &x, "top level"))
                goto out;
        ho.slice_ns = (uint64_t)x * 1000000u;
        if (spec_int(root, "stats_fd", 0, 65535, -1, &x, "top level"))
                goto out;
        ho.stats_fd = (int)x;
        if (spec_int(root, "control_fd", 3, 65535, -1, &x, "top level"))
                goto out;
        if (x >= 0) {
                ho.control_fd = (int)x;
                ho.control = on_control;
        }
        apps = json_object_get(root, "apps");
        if (!json_is_array(apps) || json_array_size(apps) == 0 ||
            json_array_size(apps) > CLUA_HOST_APPS_MAX) {
                r = spec_fail("\"apps\"", "expected an array of 1 to 65536 apps");
                goto out;
        }
        if (spec_int(root, "slots", (json_int_t)json_array_size(apps), CLUA_HOST_APPS_MAX,
                     (json_int_t)json_array_size(apps), &x, "top level"))
                goto out;
        ho.n_apps = (uint32_t)x;
        r = clua_host_new(&ho, &h);
        if (r < 0) {
                fprintf(stderr, "cella-lua: cannot create the host: %s\n", strerror(-r));
                r = r == -EINVAL ? CLUA_EXIT_USAGE : CLUA_EXIT_INTERNAL;
                goto out;
        }
        json_array_foreach(apps, n, v)
        {
                char where[96], why[256];
                CLuaSpecApp sa;

                snprintf(where, sizeof(where), "apps[%zu]", n);
                if (clua_spec_app_parse(v, true, &sa, why, sizeof why) < 0) {
                        r = spec_fail(where, why);
                        goto out;
                }
                if (sa.slot >= 0 && (uint32_t)sa.slot >= ho.n_apps) {
                        r = spec_fail(where, "\"slot\": expected an integer below \"slots\"");
                        goto out;
                }
                r = add_app(h, sa.slot >= 0 ? (uint32_t)sa.slot : (uint32_t)n, 0, &sa,
                            sa.channel_fd, sa.log_fd);
                if (r < 0) {
                        r = CLUA_EXIT_INTERNAL;
                        goto out;
                }
        }
        json_decref(root);
        root = NULL;
        r = clua_host_run(h);
        if (r < 0) {
                fprintf(stderr, "cella-lua: event loop: %s\n", strerror(-r));
                r = CLUA_EXIT_INTERNAL;
        }
out:
        fflush(stdout);
        json_decref(root);
        clua_host_free(h);
        return r;
}

int main(int argc, char **argv)
{
        /* Before any jansson value exists: from here on jansson's and SQLite's
         * memory is charged to the app they work for (alloc.h). */
        (void)clua_alloc_global_init();
        if (argc >= 3 && strcmp(argv[1], "--spec") == 0 && argc == 3)
                return run_spec(argv[2], -1);
        if (argc >= 3 && strcmp(argv[1], "--spec-fd") == 0 && argc == 3) {
                char *end;
                long fd = strtol(argv[2], &end, 10);

                if (*end || fd < 0 || fd > 65535) {
                        fprintf(stderr, "cella-lua: --spec-fd: expected an fd number\n");
                        return CLUA_EXIT_USAGE;
                }
                return run_spec(NULL, (int)fd);
        }
        if (argc < 2 || argv[1][0] == '-') {
                fprintf(stderr, "usage: cella-lua ENTRY.lua [ARGS...]\n"
                                "       cella-lua --spec FILE | --spec-fd N\n");
                return CLUA_EXIT_USAGE;
        }
        return run_single(argc, argv);
}
